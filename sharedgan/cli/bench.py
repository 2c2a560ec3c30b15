"""``sharedgan bench``: the engines timed against the sequential baseline."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sharedgan.config import TrainConfig
from sharedgan.errors import ConfigError


@click.command()
@click.option("--k", "ks", default="2,4,8", show_default=True, help="Comma-separated K values.")
@click.option("--engines", default="sequential,parallel", show_default=True,
              help="Comma-separated engines; the sequential one is the baseline of the speedups. The async engine "
                   "may carry settings: async:b8 (--serve-batch 8), :r2 (2 D and 2 C replicas), :d2, :c2, "
                   ":hogwild or :copy, :s10 (--sync-every); parallel:pin is the parallel engine with --pin-roles.")
@click.option("--dataset", default="ring8", show_default=True, help="Any launch data set.")
@click.option("--rounds", type=click.IntRange(min=1), default=300, show_default=True, help="Rounds per run.")
@click.option("--repeats", type=click.IntRange(min=1), default=2, show_default=True, help="Runs per cell (medians).")
@click.option("--eval-every", type=click.IntRange(min=1), default=25, show_default=True,
              help="Evaluation cadence: the resolution of time to quality.")
@click.option("--quality", type=click.FloatRange(0, 1), default=0.9, show_default=True,
              help="Time-to-quality target. 2-D: every mode covered with at least this high-quality share. Images: no "
                   "generator collapsed or unreal, and the mixture's precision at least this share of real "
                   "held-out images'.")
@click.option("--in-process-threads", type=click.IntRange(min=1),
              help="Torch threads of the in-process engines (sequential, batched) [default: every core]. Small models "
                   "often run faster on 1: give the baseline its best.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Batch size of every run [default: launch's].")
@click.option("--width", type=click.IntRange(min=1), help="DCGAN width of image runs [default: launch's].")
@click.option("--data-dir", type=click.Path(), help="Image data location, as for launch.")
@click.option("--out", type=click.Path(), required=True, help="Folder for bench.h5, bench.md, bench.png and the runs.")
@click.option("--force", is_flag=True, help="Replace an earlier study in --out.")
def bench(ks, engines, dataset, rounds, repeats, eval_every, quality, in_process_threads, batch_size, width, data_dir,
          out, force):
    """Time the engines against the sequential baseline: seconds per round, generator updates per
    second, speedup, parallel efficiency, start-up and time to quality, for every K.

    Each run is a normal training in OUT/runs; the engines alternate their order over repeats.
    The in-process engines (sequential, batched) get every core (or --in-process-threads); each
    process of the multi-process engines gets cores // processes threads (at least 1), so nothing
    oversubscribes. Writes OUT/bench.h5 (every run), OUT/bench.md (the table, headed by the
    machine) and OUT/bench.png (time per round ÷ sequential, with the 1/K limit).
    """
    from sharedgan.bench import BenchInterrupted, BenchPlan, engine_settings, markdown, parse_list, run_bench
    plan = BenchPlan(parse_list(ks, "--k"), parse_list(engines, "--engines", str), dataset, rounds, repeats,
                     eval_every, quality, in_process_threads=in_process_threads)
    for engine in plan.engines:
        TrainConfig(**engine_settings(engine)).validate()
    if "sequential" not in plan.engines:
        raise ConfigError("--engines must include sequential: it is the baseline of every speedup")
    plan.base = {name: value for name, value in (("batch_size", batch_size), ("width", width), ("data_dir", data_dir))
                 if value is not None}
    for k in plan.ks:  # every configuration is checked before the first run starts
        TrainConfig(**{**plan.base, "k": k, "dataset": dataset, "rounds": rounds}).validate()
    target = Path(out)
    if (target / "bench.h5").exists() and not force:
        raise ConfigError(f"{target} holds an earlier study (bench.h5); choose another --out or pass --force")

    def done(engine, k, repeat, row):
        click.echo(f"  {engine:>10s}  K={k:<3d} repeat {repeat + 1}: {row['seconds_per_round']:.4f} s/round, "
                   f"start-up {row['startup_seconds']:.1f} s", err=True)
    try:
        rows = run_bench(plan, target, done)
    except BenchInterrupted as exc:
        click.echo(markdown(plan, exc.rows))
        click.echo(f"stopped: {exc}: {target / 'bench.h5'}, {target / 'bench.md'}, {target / 'bench.png'}", err=True)
        sys.exit(128 + exc.signum)
    click.echo(markdown(plan, rows))
    click.echo(f"wrote {target / 'bench.h5'}, {target / 'bench.md'} and {target / 'bench.png'}")
