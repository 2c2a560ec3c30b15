"""``sharedgan eval``: a run's latest checkpoint on fresh samples, then where the time went."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sharedgan.eval.coverage import MIN_ACCURACY


@click.command(name="eval")
@click.argument("run", type=click.Path())
@click.option("--n", "n", type=click.IntRange(min=1), default=2500, show_default=True,
              help="Fresh samples to evaluate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fresh samples.")
@click.option("--checkpoint", "at_round", type=click.IntRange(min=1), default=None,
              help="Evaluate the kept checkpoint after this round (as the run counts them, from 1) instead of the "
                   "newest.")
@click.option("--classifier-epochs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Image runs: epochs of the class-coverage classifier, trained once per data set and cached.")
@click.option("--min-accuracy", type=click.FloatRange(0, 1), default=MIN_ACCURACY, show_default=True,
              help="Image runs: refuse coverage from a classifier below this accuracy on held-out real images.")
@click.option("--inception", is_flag=True, help="Image runs: also Inception score and FID (torch-fidelity, "
                                                "'pip install sharedgan[metrics]'), the mixture and each generator.")
@click.option("--inception-weights", type=click.Path(), help="torch-fidelity's Inception weights file, for machines "
                                                             "without network (else it is downloaded once).")
@click.option("--trust-run", is_flag=True,
              help="RUN's config.json may name model factories sharedgan does not ship: import and run them "
                   "(only for runs you trust; see the README's Security).")
def eval_(run, trust_run, n, seed, at_round, classifier_epochs, min_accuracy, inception, inception_weights):
    """Evaluate RUN's latest checkpoint (or --checkpoint ROUND's) on N fresh samples, then show
    where the time went (each role's mean seconds per round computing, waiting and copying slots).

    2-D runs: the mode table (modes covered, high-quality share, KL to uniform, generator × mode).
    Image runs: class coverage (classes covered, confident share, KL to uniform, generator × class),
    judged by a small classifier trained on the data set's own labels; it is refused when that
    classifier's accuracy on held-out real images is below --min-accuracy. Then each generator's
    spread (how varied its samples are next to real images: near 0 when it draws one picture
    whatever its noise, which coverage cannot see), and each generator's realness: precision,
    recall, density and coverage in the classifier's features, next to what held-out real images
    score; a generator whose precision is below 0.5 is flagged unreal (it draws what no real image
    looks like, e.g. noise). --inception adds IS and FID.
    """
    from sharedgan.eval.modes import format_report
    from sharedgan.runs import load_run
    from sharedgan.storage.runfile import format_time_breakdown, read_run_file
    r = load_run(run, trust=trust_run, at_round=at_round)
    click.echo(f"{run}: round {r.round + 1} of {r.config.rounds}, K = {r.config.k}, {r.config.dataset}, "
               f"{r.config.engine} engine")
    if not r.config.images:
        click.echo(format_report(r.evaluate(n, seed)))
    else:
        _image_metrics(r, n, seed, classifier_epochs, min_accuracy, inception, inception_weights)
    try:
        click.echo(format_time_breakdown(read_run_file(Path(run) / "run.h5")))
    except (OSError, ValueError, KeyError):
        click.echo("(no readable run.h5: no time breakdown)")


def _image_metrics(r, n, seed, epochs, min_accuracy, inception, weights) -> None:
    """Coverage, spread, then IS/FID: each prints its table, or one line saying why it cannot (never a crash)."""
    from sharedgan.eval.coverage import CoverageRefused, format_coverage
    from sharedgan.eval.fidelity import MetricsUnavailable, format_inception
    from sharedgan.eval.realness import format_realness
    from sharedgan.eval.spread import format_spread
    bar = None

    def on_step(done, total):  # a bar only when the classifier is trained (not when it comes from the cache)
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label="training the coverage classifier (once per data set)",
                                    file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)
    try:
        click.echo(format_coverage(r.class_coverage(n, seed, epochs, min_accuracy, on_step)))
    except CoverageRefused as exc:
        click.echo(str(exc))
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    click.echo(format_spread(r.spread(n, seed)))
    try:
        click.echo(format_realness(r.realness(n, seed, epochs, min_accuracy)))
    except CoverageRefused as exc:
        click.echo(str(exc))
    if inception:
        try:
            results, real_count = r.inception(n, seed, weights)
            click.echo(format_inception(results, real_count))
        except MetricsUnavailable as exc:
            click.echo(str(exc))
    click.echo("pictures: samples.png and evolution.png in the run; more with 'sharedgan sample --png'")
