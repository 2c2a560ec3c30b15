"""The ``sharedgan`` command line: launch, sample, eval.

Exit codes: 0 done, 1 failure during the run, 2 bad input, 130 Ctrl-C (SIGINT), 143 SIGTERM.
Bad input is reported in one line, without a traceback, before anything is written.
"""
from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from .beta_schedule import SCHEDULES
from .config import (CLASSIFIERS, ENGINES, FEATURE_MATCHING, GENERATOR_LOSSES, GENERATORS, LR_DECAYS, LR_SCALINGS,
                     NOISE_PRIORS, ON_FAILURE, OPTIMIZERS, REPLICA_SYNCS, ConfigError, TrainConfig)
from .coverage import MIN_ACCURACY
from .models import FactoryError

EXIT_FAILED, EXIT_USAGE = 1, 2

# (option, config field, click type, help). Defaults come from TrainConfig, so --help shows them.
LAUNCH_OPTIONS = [
    ("--k", "k", int, "Number of generators (K). K = 1 is a plain GAN with no classifier."),
    ("--dataset", "dataset", str, "Data: ring8 (8 Gaussians on a circle), grid25 (5×5 grid), cifar10, mnist, or the path "
     "of your images (.h5 with 'images' [N, H, W, C] uint8, .npy, .npz, or a folder of PNG/JPEG); see 'sharedgan data'."),
    ("--data-dir", "data_dir", click.Path(), "Where the official image files are, or are downloaded to."),
    ("--cache-dir", "cache_dir", click.Path(), "Where the HDF5 caches of image data sets go [default: DATA_DIR/cache]."),
    ("--verify-md5/--no-verify-md5", "verify_md5", bool,
     "Check downloaded or given archives against their published MD5 (off: a re-packed copy; its content is still checked)."),
    ("--engine", "engine", click.Choice(ENGINES),
     "parallel: one process per generator plus D and C, lock-step rounds. sequential: the same math in one process. "
     "batched: one process, D and C take one step on all K slots at once (faster, not Algorithm 1; see the README). "
     "async: no lock-step; free D and C processes (--d-replicas, --c-replicas) serve slots as they arrive (not deterministic)."),
    ("--rounds", "rounds", int, "Training rounds. Each round: every generator one batch and one update; D and C K updates each."),
    ("--batch-size", "batch_size", int, "Samples per generator batch (m), also D's real batch."),
    ("--lr", None, float, "Learning rate of G, D and C at once (overridden by --lr-generator etc.)."),
    ("--lr-generator", "lr_generator", float, "Generator learning rate."),
    ("--lr-discriminator", "lr_discriminator", float, "Discriminator learning rate."),
    ("--lr-classifier", "lr_classifier", float, "Classifier (adjustment component) learning rate."),
    ("--lr-decay", "lr_decay", click.Choice(LR_DECAYS), "none: constant learning rates. linear: all fall linearly to 0 by the last round."),
    ("--optimizer-generator", "optimizer_generator", click.Choice(OPTIMIZERS), "Generator optimiser."),
    ("--optimizer-discriminator", "optimizer_discriminator", click.Choice(OPTIMIZERS), "Discriminator optimiser."),
    ("--optimizer-classifier", "optimizer_classifier", click.Choice(OPTIMIZERS), "Classifier optimiser."),
    ("--adam-beta1", "adam_beta1", float, "Adam first-moment decay (the papers use 0.5)."),
    ("--adam-beta2", "adam_beta2", float, "Adam second-moment decay."),
    ("--noise-dim", "noise_dim", int, "Dimension of the generator's noise z [default: 2 for 2-D data, 100 for images]."),
    ("--noise", "noise", click.Choice(NOISE_PRIORS), "Noise prior: standard normal or uniform on [−1, 1]."),
    ("--hidden", "hidden", int, "Width of the built-in MLPs' hidden layers (2-D data)."),
    ("--width", "width", int, "Base width of the DCGAN models (images): 64 as in DCGAN; 8 for a quick CPU run."),
    ("--beta-schedule", "beta_schedule", click.Choice(SCHEDULES),
     "Weight β_k of the classifier term: constant β0; time β0·exp(−λt); loss-gap β0·2σ(−|Δ_k|/τ); combined = time × loss-gap."),
    ("--beta0", "beta0", float, "Initial (and largest) β [default: 3 for 2-D data, 1 (PGAN's) for images]."),
    ("--beta-decay", "beta_decay", float, "λ of the time schedule, per round [default: ln(100)/rounds, so β ends at 1% of β0]."),
    ("--beta-tau", "beta_tau", float, "τ of the loss-gap schedule, in loss units."),
    ("--threshold", "threshold", float, "t: the generator's D term 1 − d(x) is truncated (no gradient) where D(x) > t."),
    ("--generator-loss", "generator_loss", click.Choice(GENERATOR_LOSSES),
     "D's term of each generator's objective: pgan 1 − d(x) truncated at t (the paper's); ns −log D(x) (non-saturating); "
     "minimax log(1 − D(x))."),
    ("--classifier", "classifier", click.Choice(CLASSIFIERS),
     "C's objective: ovr (PGAN: head k says 'from the others'); softmax (MGAN general JSD, eq. 2); one-vs-all (MGAN eq. 3, "
     "with the cross terms); pairwise (MGAN eq. 4, one head per pair of generators)."),
    ("--feature-matching", "feature_matching", click.Choice(FEATURE_MATCHING),
     "Feature matching (Improved GAN): each generator's D term is replaced by (or, with add, gets added) "
     "‖E_data f(x) − E_G f(x)‖², f the last hidden layer of D."),
    ("--minibatch-features", "minibatch_features", int,
     "Minibatch discrimination in the built-in D: B kernels comparing each sample with the rest of its batch; 0 = off."),
    ("--minibatch-kernel-dim", "minibatch_kernel_dim", int, "C, the dimension of each minibatch-discrimination kernel."),
    ("--virtual-batch-norm/--no-virtual-batch-norm", "virtual_batch_norm", bool,
     "Virtual batch norm in the built-in generators: statistics of a reference batch fixed at the start, plus the sample."),
    ("--shared-trunk/--no-shared-trunk", "shared_trunk", bool,
     "MGAN's sharing: the classifier is a second head on D's trunk, run in D's process (no C process)."),
    ("--share-generator-body/--no-share-generator-body", "share_generator_body", bool,
     "MGAN's sharing: generators differ only in their first layer; the body is one, stepped each round on the sum "
     "of the K generators' gradients (in the buffer's parameter region in the parallel engine)."),
    ("--generator", "generator", click.Choice(GENERATORS),
     "The built-in generator: standard, or sdeconv (stochastic ensembling: each sample picks its deep layers' filters "
     "from a bank; weight norm and PReLU)."),
    ("--bank", "bank", int, "--generator sdeconv: filters in each bank."),
    ("--stochastic-layers", "stochastic_layers", int, "--generator sdeconv: how many deep layers (nearest z) pick from a bank."),
    ("--label-smoothing", "label_smoothing", float,
     "One-sided label smoothing: D's target for real samples, α in (0.5, 1]; 0.9 as in Improved GAN; 1 = none."),
    ("--historical-averaging", "historical_averaging", float,
     "λ: every role (G, D, C) also descends λ‖θ − θ̄‖², θ̄ the mean of its past parameters (Improved GAN); 0 = off."),
    ("--seed", "seed", int, "Run seed; every random stream is derived from it."),
    ("--device", "device", str, "Where the slot buffer and the models live: cpu, cuda or cuda:N (CUDA tensors are shared "
     "between the processes through torch.multiprocessing)."),
    ("--devices", "devices", str, "Place roles on several GPUs: 'generators:cuda:0,cuda:1;discriminator:cuda:2;classifier:cuda:3' "
     "(generators dealt over their list; unnamed roles on --device)."),
    ("--deterministic/--no-deterministic", "deterministic", bool,
     "Deterministic kernels in every process (torch.use_deterministic_algorithms), for bit-exact GPU runs."),
    ("--threads", "threads", int, "Torch threads per process (per role in the parallel engine)."),
    ("--d-replicas", "d_replicas", int, "--engine async: discriminator processes serving the generators (R)."),
    ("--c-replicas", "c_replicas", int, "--engine async: classifier processes serving the generators."),
    ("--replica-sync", "replica_sync", click.Choice(REPLICA_SYNCS),
     "--engine async, R > 1: copy: replicas load the primary's parameters every --sync-every steps; "
     "hogwild: all replicas update one set of parameters in shared memory, without locks."),
    ("--sync-every", "sync_every", int, "--replica-sync copy: steps between the primary's publications (and a replica's loads)."),
    ("--serve-batch", "serve_batch", int,
     "--engine async: the most waiting slots a D or C process scores and learns from in one step (one forward "
     "pass, one update, as --engine batched does); 1: one step per slot, as Algorithm 1."),
    ("--serve-lr-scaling", "serve_lr_scaling", click.Choice(LR_SCALINGS),
     "--engine async: a D or C step on g slots uses the learning rate × √g (sqrt: fewer, larger steps learn about as "
     "much per round as g single-slot steps) or as set (none)."),
    ("--ring-modes", "ring_modes", int, "ring8: number of modes on the circle."),
    ("--ring-radius", "ring_radius", float, "ring8: radius of the circle."),
    ("--grid-side", "grid_side", int, "grid25: modes per side."),
    ("--grid-spacing", "grid_spacing", float, "grid25: distance between neighbouring modes."),
    ("--mode-std", "mode_std", float, "Std of every mode [default: 0.02 for ring8, 0.05 for grid25]."),
    ("--generator-factory", "generator_factory", str,
     "Your generator: 'package.module:function' taking a ModelSpec [default: the MLP for 2-D data, DCGAN for images]."),
    ("--discriminator-factory", "discriminator_factory", str, "Your discriminator factory, likewise."),
    ("--classifier-factory", "classifier_factory", str, "Your classifier factory (K logit heads), likewise."),
    ("--eval-every", "eval_every", int, "Evaluate on fresh samples every N rounds (and at the end)."),
    ("--eval-samples", "eval_samples", int, "Fresh samples per generator per evaluation [default: 2500 for 2-D data, 64 for images]."),
    ("--checkpoint-every", "checkpoint_every", int, "Checkpoint every N rounds (and at every stop)."),
    ("--keep-checkpoints", "keep_checkpoints", int, "Complete checkpoints to keep."),
    ("--signal-timeout", "signal_timeout", float, "Seconds a role waits for a peer's signal before the run fails."),
    ("--heartbeat-timeout", "heartbeat_timeout", float,
     "Seconds without a heartbeat after which a role counts as hung (stopped, deadlocked) and is killed."),
    ("--on-failure", "on_failure", click.Choice(ON_FAILURE),
     "stop: a crashed or hung role ends the run. respawn: restart it from its latest checkpoint while the others wait."),
    ("--max-restarts", "max_restarts", int, "With --on-failure respawn: restarts allowed per role before the run gives up."),
    ("--out", "out", click.Path(), "Run directory [default: runs/<timestamp>]. A non-empty one is refused without --force."),
]


def _launch_options(func):
    defaults = TrainConfig()
    for flag, field, type_, help_ in reversed(LAUNCH_OPTIONS):
        default = getattr(defaults, field) if field else None
        shown = f"{help_}" + (f"  [default: {default}]" if default is not None and "[default" not in help_ else "")
        func = click.option(flag, field or "lr", type=type_, default=None, help=shown)(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="sharedgan")
def cli():
    """sharedgan: train a mixture of K GAN generators in parallel (PGAN), or the same math in one process.

    \b
    sharedgan launch                      # 8 generators on ring8, parallel engine
    sharedgan launch --engine sequential  # the same training in one process
    sharedgan launch --engine async --serve-batch 4   # no lock-step; D and C serve slots as they arrive
    sharedgan sample RUN --n 2500 --out samples.h5
    sharedgan eval RUN
    sharedgan data cifar10 --data-dir ~/data --png cifar10.png
    sharedgan bench --k 2,4,8 --out bench    # the engines against the sequential baseline
    """


@cli.command()
@click.option("--config", "config_file", type=click.Path(), help="Start from a config.json (e.g. a run's); options given here override it.")
@click.option("--resume", "resume_dir", type=click.Path(),
              help="Continue the run in this directory from its latest intact checkpoint (bit-exact on CPU). "
                   "Only how it runs may change (--engine, --threads, --eval-every, checkpoints, timeouts, --on-failure).")
@click.option("--force", is_flag=True, help="Reuse a non-empty --out, replacing the run that is there.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_launch_options
def launch(config_file, resume_dir, force, quiet, lr, **options):
    """Train K generators, a discriminator D and a classifier C.

    Writes the run directory: config.json, logs/, run.h5, checkpoints/, samples.png, curves.png,
    evolution.png. Ctrl-C stops after one more round and leaves a checkpoint (exit code 130);
    --resume continues from it.
    """
    from .trainer import TrainingInterrupted, resume_config, train
    if lr is not None:
        options.update(lr_generator=lr, lr_discriminator=lr, lr_classifier=lr)
    given = {field: value for field, value in options.items() if value is not None}
    if resume_dir is not None:
        if config_file or force:
            raise ConfigError("--resume takes the run's own config.json; drop --config and --force")
        config = resume_config(resume_dir, given)
    else:
        config = TrainConfig.from_file(config_file) if config_file else TrainConfig()
        for field, value in given.items():
            setattr(config, field, value)
    try:
        from .rundir import default_out
        config.out = config.out or default_out()
        _LAST_RUN["out"] = config.out
        result = train(config, force=force, progress=not quiet, resume=resume_dir is not None)
    except TrainingInterrupted as exc:
        click.echo(f"stopped: {exc}", err=True)
        sys.exit(130 if exc.signum == signal.SIGINT else 128 + exc.signum)
    m = result.metrics
    click.echo(f"done: {result.rounds_completed} rounds in {result.train_seconds:.1f} s of training "
               f"(+{result.startup_seconds:.1f} s start-up); run directory {result.run_dir}")
    if "modes_covered" in m:
        click.echo(f"last evaluation: {m['modes_covered']}/{m['num_modes']} modes covered, "
                   f"{m['high_quality']:.1%} high quality, KL(p̂‖uniform) {m['kl_uniform']:.3f}")


@cli.command()
@click.argument("run", type=click.Path())
@click.option("--n", "n", type=click.IntRange(min=1), default=2500, show_default=True, help="Number of samples.")
@click.option("--out", "out", type=click.Path(), required=True, help="HDF5 file to write (refused if it exists, unless --force).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the noise and of the generator choice.")
@click.option("--force", is_flag=True, help="Overwrite --out.")
@click.option("--png", type=click.Path(), help="Also write a picture of the samples (a grid, one row per generator, for images).")
def sample(run, n, out, seed, force, png):
    """Draw N samples of the mixture from RUN's latest checkpoint into an HDF5 file.

    Datasets: samples [N, 2] float32 for 2-D runs, or images [N, H, W, C] uint8 for image runs;
    generator [N] int64 (which generator made each sample, drawn uniformly). --png also writes a
    picture: one row per generator for image runs.
    """
    import h5py
    from .trainer import load_run
    if Path(out).exists() and not force:
        raise ConfigError(f"{out} exists; choose another --out or pass --force")
    r = load_run(run)
    samples, which = r.sample(n, seed)
    try:
        with h5py.File(out, "w") as f:
            if r.config.images:
                from .image_data import to_uint8
                f.create_dataset("images", data=to_uint8(samples), compression="gzip")
            else:
                f.create_dataset("samples", data=samples.numpy())
            f.create_dataset("generator", data=which.numpy())
            f.attrs.update({"run": str(Path(run).resolve()), "round": r.round, "seed": seed})
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc}") from None
    click.echo(f"wrote {n} samples from round {r.round + 1} of {run} to {out}")
    if png:
        _sample_picture(r, samples, which, png)
        click.echo(f"wrote {png}")


def _sample_picture(r, samples, which, png) -> None:
    from .plots import save_image_grid, scatter_samples
    if not r.config.images:
        scatter_samples(samples.numpy(), which.numpy(), r.dataset.centers.numpy(), r.config.k, png)
        return
    import numpy as np
    from .image_data import to_uint8
    pictures = to_uint8(samples)
    rows = [pictures[(which == k).numpy()][:8] for k in range(r.config.k)]
    width = max(len(row) for row in rows)
    blank = np.full((width, *pictures.shape[1:]), 255, np.uint8)
    grid = np.concatenate([np.concatenate([row, blank[len(row):]]) for row in rows])
    save_image_grid(grid, png, columns=width)


@cli.command(name="eval")
@click.argument("run", type=click.Path())
@click.option("--n", "n", type=click.IntRange(min=1), default=2500, show_default=True, help="Fresh samples to evaluate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fresh samples.")
@click.option("--classifier-epochs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Image runs: epochs of the class-coverage classifier, trained once per data set and cached.")
@click.option("--min-accuracy", type=click.FloatRange(0, 1), default=MIN_ACCURACY, show_default=True,
              help="Image runs: refuse coverage from a classifier below this accuracy on held-out real images.")
@click.option("--inception", is_flag=True, help="Image runs: also Inception score and FID (torch-fidelity, "
                                                "'pip install sharedgan[metrics]'), the mixture and each generator.")
@click.option("--inception-weights", type=click.Path(), help="torch-fidelity's Inception weights file, for machines "
                                                             "without network (else it is downloaded once).")
def eval_(run, n, seed, classifier_epochs, min_accuracy, inception, inception_weights):
    """Evaluate RUN's latest checkpoint on N fresh samples, then show where the time went (each
    role's mean seconds per round computing, waiting and copying slots).

    2-D runs: the mode table (modes covered, high-quality share, KL to uniform, generator × mode).
    Image runs: class coverage (classes covered, confident share, KL to uniform, generator × class),
    judged by a small classifier trained on the data set's own labels; it is refused when that
    classifier's accuracy on held-out real images is below --min-accuracy. Then each generator's
    spread (how varied its samples are next to real images: near 0 when it draws one picture
    whatever its noise, which coverage cannot see). --inception adds IS and FID.
    """
    from .metrics import format_report
    from .trainer import load_run
    from .record import format_time_breakdown, read_run_file
    r = load_run(run)
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
    from .coverage import CoverageRefused, format_coverage
    from .diversity import format_spread
    from .fidelity import MetricsUnavailable, format_inception
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
    if inception:
        try:
            results, real_count = r.inception(n, seed, weights)
            click.echo(format_inception(results, real_count))
        except MetricsUnavailable as exc:
            click.echo(str(exc))
    click.echo("pictures: samples.png and evolution.png in the run; more with 'sharedgan sample --png'")


@cli.command()
@click.option("--k", "ks", default="2,4,8", show_default=True, help="Comma-separated K values.")
@click.option("--engines", default="sequential,parallel", show_default=True,
              help="Comma-separated engines; the sequential one is the baseline of the speedups. The async engine "
                   "may carry settings: async:b8 (--serve-batch 8), :r2 (2 D and 2 C replicas), :d2, :c2, "
                   ":hogwild or :copy, :s10 (--sync-every).")
@click.option("--dataset", default="ring8", show_default=True, help="Any launch data set.")
@click.option("--rounds", type=click.IntRange(min=1), default=300, show_default=True, help="Rounds per run.")
@click.option("--repeats", type=click.IntRange(min=1), default=2, show_default=True, help="Runs per cell (medians).")
@click.option("--eval-every", type=click.IntRange(min=1), default=25, show_default=True,
              help="Evaluation cadence: the resolution of time to quality.")
@click.option("--quality", type=click.FloatRange(0, 1), default=0.9, show_default=True,
              help="Time-to-quality target: every mode covered with at least this high-quality share.")
@click.option("--in-process-threads", type=click.IntRange(min=1),
              help="Torch threads of the in-process engines (sequential, batched) [default: every core]. Small models "
                   "often run faster on 1: give the baseline its best.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Batch size of every run [default: launch's].")
@click.option("--width", type=click.IntRange(min=1), help="DCGAN width of image runs [default: launch's].")
@click.option("--data-dir", type=click.Path(), help="Image data location, as for launch.")
@click.option("--out", type=click.Path(), required=True, help="Folder for bench.h5, bench.md, bench.png and the runs.")
@click.option("--force", is_flag=True, help="Replace an earlier study in --out.")
def bench(ks, engines, dataset, rounds, repeats, eval_every, quality, in_process_threads, batch_size, width, data_dir, out,
          force):
    """Time the engines against the sequential baseline: seconds per round, generator updates per
    second, speedup, parallel efficiency, start-up and time to quality, for every K.

    Each run is a normal training in OUT/runs; the engines alternate their order over repeats.
    The in-process engines (sequential, batched) get every core (or --in-process-threads); each process of the
    multi-process engines gets cores // processes threads (at least 1), so nothing oversubscribes. Writes OUT/bench.h5 (every run), OUT/bench.md (the
    table, headed by the machine) and OUT/bench.png (time per round ÷ sequential, with the 1/K limit).
    """
    from .bench import BenchPlan, engine_settings, markdown, parse_list, run_bench
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
    rows = run_bench(plan, target, done)
    click.echo(markdown(plan, rows))
    click.echo(f"wrote {target / 'bench.h5'}, {target / 'bench.md'} and {target / 'bench.png'}")


@cli.command()
@click.argument("name")
@click.option("--data-dir", type=click.Path(), default="data", show_default=True,
              help="Where the official files are (or are downloaded to): cifar-10-python.tar.gz or cifar-10-batches-py/; "
                   "the four MNIST IDX files.")
@click.option("--cache-dir", type=click.Path(), help="Where the HDF5 cache goes [default: DATA_DIR/cache].")
@click.option("--no-verify-md5", is_flag=True, help="Accept archives whose MD5 differs from the published one "
                                                    "(a re-packed copy); the content is still checked.")
@click.option("--no-download", is_flag=True, help="Never reach for the network; fail if the files are missing.")
@click.option("--png", type=click.Path(), help="Also write a grid of 64 images, one row per class where there are labels.")
def data(name, data_dir, cache_dir, no_verify_md5, no_download, png):
    """Prepare a data set's HDF5 cache and describe it: NAME is cifar10, mnist, or the path of your
    own data (.h5 with 'images' [N, H, W, C] uint8 and optional 'labels' [N]; .npy; .npz; a folder
    of PNG/JPEG images, one sub-folder per class if labelled).

    The cache is built once; later runs map it without copying. A missing or damaged source is
    refused with a one-line error that says how to get a good one, and nothing is half-written.
    """
    import numpy as np
    from .image_data import load
    d = load(name, data_dir, cache_dir, verify_md5=not no_verify_md5, download=not no_download)
    n, (h, w, c) = len(d.images), d.shape
    click.echo(f"{d.name}: {n} images {h}×{w}×{c} uint8" + (f", {len(d.test_images)} held out" if d.test_images is not None else "")
               + f"; cache {d.cache}")
    if d.classes:
        counts = np.bincount(d.labels[d.labels >= 0], minlength=len(d.classes))
        click.echo("classes: " + ", ".join(f"{name} {count}" for name, count in zip(d.classes, counts)))
    if png:
        from .plots import save_image_grid
        pick = _grid_picks(d.labels, len(d.classes))
        save_image_grid(np.asarray(d.images[pick]), png, columns=8)
        click.echo(f"wrote {png}")


def _grid_picks(labels, num_classes: int, per_row: int = 8, rows: int = 8):
    """Indices for a picture: one row per class (up to ``rows``) when labelled, else the first 64."""
    import numpy as np
    if num_classes == 0:
        return np.arange(min(len(labels), per_row * rows))
    picks = [np.flatnonzero(labels == c)[:per_row] for c in range(min(num_classes, rows))]
    return np.concatenate([p for p in picks if len(p)])


def _resume_hint(diverged: bool) -> str:
    """Where a failed launch can go on from (resuming a divergence would only repeat it)."""
    from . import checkpoint
    out = _LAST_RUN.get("out")
    found = checkpoint.latest(Path(out)) if out else None
    if found is None:
        return ""
    if diverged:
        return f"; the last good checkpoint is {found}"
    return f"; resume from {found.name} with: sharedgan launch --resume {out}"


_LAST_RUN: dict = {}


def main(argv=None) -> None:
    """Console entry point: one-line errors and documented exit codes, never a traceback for bad input."""
    from .roles import Diverged
    from .runner import RoleFailed
    try:
        code = cli.main(args=argv, prog_name="sharedgan", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.Abort:
        code = 130
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        code = EXIT_USAGE
    except (ConfigError, FactoryError) as exc:
        click.echo(f"error: {exc}", err=True)
        code = EXIT_USAGE
    except (RoleFailed, Diverged) as exc:
        click.echo(f"failed: {exc}{_resume_hint(diverged='diverged at round' in str(exc))}", err=True)
        code = EXIT_FAILED
    except OSError as exc:  # a write of the run itself failed: disk full, file-size limit, read-only disk
        where = f" {exc.filename}" if exc.filename else ""
        click.echo(f"failed: cannot write{where}: {exc.strerror or exc}; free space and resume{_resume_hint(False)}",
                   err=True)
        code = EXIT_FAILED
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
