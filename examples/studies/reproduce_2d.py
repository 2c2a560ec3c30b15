"""Reproduce the papers' 2-D experiments, and every objective side by side, over several seeds.

    python examples/studies/reproduce_2d.py [--seeds 1,2,3,4,5] [--jobs 2] [--only pgan-fig2,grid25-k25]
                                    [--runs runs/reproduce] [--out docs/reproduce-2d]

Each experiment is one row: a set of `sharedgan launch` settings trained for each seed with the
sequential engine and one thread per run (the engines give the same numbers; --jobs runs share the
cores). A row reports modes covered, % high-quality samples and KL(p̂ ‖ uniform) of the final
evaluation (2,500 fresh samples) as mean ± std over the seeds, how many seeds reach the goal (every
mode, ≥ 95% high quality on ring8, ≥ 90% on grid25), its rounds and its training seconds.

Finished runs keep a result.json in their run directory and are not trained again, so a cut-off
study resumes where it stopped. Writes <out>/results.md and PNGs under <out>/figures: the final
samples of every row (first seed), the evolution of PGAN Fig. 2 and MGAN Fig. 2, and PGAN Fig. 3's
generator × mode table over time.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

# name: (what it reproduces or compares, settings). Every row not naming them uses the defaults
# (K = 8 on ring8, 3000 rounds, PGAN's objective, the time β schedule from β0 = 3). Rows measured
# with PGAN's β0 = 1 (the default until the grid25 rows below changed it) pin it.
MGAN = dict(classifier="softmax", generator_loss="ns", beta_schedule="constant")
PAPER_BETA = dict(beta0=1.0)  # PGAN's β0; rows measured with it say so, whatever the default
SIDE = dict(rounds=2000, **PAPER_BETA)  # the side-by-side rows: K = 8 on ring8, one setting changed
EXPERIMENTS = {
    "ring8-beta0-3": ("K = 8 on ring8, the defaults (β0 = 3)", dict(k=8, beta0=3.0)),
    "grid25-k25-beta0-3": ("grid25 with K = 25, the defaults (β0 = 3)", dict(k=25, dataset="grid25", beta0=3.0)),
    "ring8-negatives-128": ("K = 8 on ring8, the defaults with C's negatives N = 128 (of 896)",
                            dict(k=8, beta0=3.0, classifier_negatives=128)),
    "grid25-k25-negatives-128": ("grid25 with K = 25, the defaults with C's negatives N = 128 (of 3,072)",
                                 dict(k=25, dataset="grid25", beta0=3.0, classifier_negatives=128)),
    "ring8-k64-negatives-128": ("K = 64 on ring8, the defaults with C's negatives N = 128 (of 8,064)",
                                dict(k=64, beta0=3.0, classifier_negatives=128)),
    "pgan-fig2": ("PGAN Fig. 2: K = 8 on ring8, one mode per generator (β0 = 1)", dict(k=8, **PAPER_BETA)),
    "grid25-k25": ("grid25 with K = 25, β0 = 1", dict(k=25, dataset="grid25", **PAPER_BETA)),
    "grid25-k25-beta-constant": ("grid25 with K = 25, constant β = 1",
                                 dict(k=25, dataset="grid25", beta_schedule="constant", **PAPER_BETA)),
    "grid25-k10": ("grid25 with K = 10, β0 = 1", dict(k=10, dataset="grid25", **PAPER_BETA)),
    "grid25-k10-beta0-3": ("grid25 with K = 10, β0 = 3", dict(k=10, dataset="grid25", beta0=3.0)),
    "grid25-k10-mgan": ("grid25 with K = 10, MGAN's objective (softmax C, −log D, constant β/K)",
                        dict(k=10, dataset="grid25", beta0=0.1, rounds=6000, **MGAN)),
    "grid25-k10-mgan-long": ("grid25 with K = 10, MGAN's objective, 12000 rounds",
                             dict(k=10, dataset="grid25", beta0=0.1, rounds=12000, **MGAN)),
    "pgan-fig3": ("PGAN Fig. 3: K = 10 on ring8, competing generators merge as β shrinks (β0 = 1)",
                  dict(k=10, eval_every=250, **PAPER_BETA)),
    "mgan-fig2": ("MGAN Fig. 2: K = 4 on ring8, MGAN's objective (softmax C, −log D, constant β/K)",
                  dict(k=4, beta0=0.25, rounds=6000, **MGAN)),
    "single-gan": ("a single generator, same settings (the baseline that collapses)", dict(k=1)),
    "single-gan-grid25": ("a single generator on grid25", dict(k=1, dataset="grid25")),
    "classifier-softmax": ("K = 8, classifier softmax (MGAN eq. 2)", dict(classifier="softmax", **SIDE)),
    "classifier-one-vs-all": ("K = 8, classifier one-vs-all (MGAN eq. 3)", dict(classifier="one-vs-all", **SIDE)),
    "classifier-pairwise": ("K = 8, classifier pairwise (MGAN eq. 4)", dict(classifier="pairwise", **SIDE)),
    "loss-ns": ("K = 8, generator loss ns (−log D)", dict(generator_loss="ns", **SIDE)),
    "loss-minimax": ("K = 8, generator loss minimax (log(1 − D))", dict(generator_loss="minimax", **SIDE)),
    "beta-constant": ("K = 8, β schedule constant", dict(beta_schedule="constant", **SIDE)),
    "beta-loss-gap": ("K = 8, β schedule loss-gap", dict(beta_schedule="loss-gap", **SIDE)),
    "beta-combined": ("K = 8, β schedule combined (time × loss-gap)", dict(beta_schedule="combined", **SIDE)),
    "single-gan-minibatch": ("K = 1 with minibatch discrimination (B = 16, C = 4)",
                             dict(k=1, minibatch_features=16, minibatch_kernel_dim=4, rounds=2000)),
    "single-gan-feature-matching": ("K = 1 with feature matching", dict(k=1, feature_matching="replace", rounds=2000)),
    "single-gan-sdeconv": ("K = 1, stochastic ensembling (--generator sdeconv, bank 8, 2 layers)",
                           dict(k=1, generator="sdeconv", rounds=2000)),
}
GOAL_HIGH_QUALITY = {"ring8": 0.95, "grid25": 0.90}


def run_one(job):
    """Train one (experiment, seed) and return its result; the result is also saved next to the run."""
    name, seed, run_dir, rounds = job
    import h5py

    from sharedgan import TrainConfig, train
    settings = dict(EXPERIMENTS[name][1], **({"rounds": rounds} if rounds else {}))
    config = TrainConfig(engine="sequential", threads=1, seed=seed, out=str(run_dir), **settings)
    start = time.monotonic()
    train(config, force=True)
    wall = time.monotonic() - start
    with h5py.File(Path(run_dir) / "run.h5") as f:
        result = dict(name=name, seed=seed, rounds=int(f.attrs["rounds_planned"]), wall_seconds=wall,
                      train_seconds=float(f.attrs["train_seconds"]), modes=int(f["eval/modes_covered"][-1]),
                      num_modes=len(f["data/centers"]), high_quality=float(f["eval/high_quality"][-1]),
                      kl=float(f["eval/kl_uniform"][-1]), dataset=config.dataset)
    (Path(run_dir) / "result.json").write_text(json.dumps(result))
    return result


def _mean_std(values, fmt):
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.mean(values), fmt)} ± {format(statistics.stdev(values), fmt)}"


def summary_cells(rows: list[dict]) -> str:
    """A row's cells from its rounds to its goal count: rounds, seeds, modes, high quality, KL, goal."""
    goal = GOAL_HIGH_QUALITY[rows[0]["dataset"]]
    reached = sum(r["modes"] == r["num_modes"] and r["high_quality"] >= goal for r in rows)
    return (f"{rows[0]['rounds']} | {len(rows)} | "
            f"{_mean_std([r['modes'] for r in rows], '.1f')}/{rows[0]['num_modes']} | "
            f"{_mean_std([100 * r['high_quality'] for r in rows], '.1f')} | "
            f"{_mean_std([r['kl'] for r in rows], '.3f')} | {reached}/{len(rows)}")


def table(results: dict[str, list[dict]]) -> str:
    lines = ["| experiment | what | rounds | seeds | modes covered | high quality % "
             "| KL(p̂‖uniform) | goal reached | train s (mean) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, rows in results.items():
        if rows:
            lines.append(f"| {name} | {EXPERIMENTS[name][0]} | {summary_cells(rows)} | "
                         f"{statistics.mean(r['train_seconds'] for r in rows):.0f} |")
    return "\n".join(lines)


def final_samples(results: dict[str, list[dict]], runs: Path, target: Path, columns: int = 4) -> bool:
    """One panel per row: the final samples of its first seed. False if no row has finished."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sharedgan.plots import draw_mixture
    from sharedgan.storage.runfile import read_run_file
    done = [(name, rows[0]) for name, rows in results.items() if rows]
    if not done:
        return False
    cols = min(columns, len(done))
    rows_n = math.ceil(len(done) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.2 * cols, 3.4 * rows_n), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (name, r) in zip(axes.flat, done):
        data = read_run_file(runs / name / f"seed{r['seed']}" / "run.h5")
        ax.set_axis_on()
        draw_mixture(ax, data["data/centers"], data["eval/samples"][-1], data["eval/generator"][-1],
                     int(data["attrs"]["k"]), f"{name} (seed {r['seed']})\n{r['modes']}/{r['num_modes']} modes, "
                                              f"{r['high_quality']:.1%} hq")
    fig.tight_layout()
    fig.savefig(target, dpi=90)
    plt.close(fig)
    return True


def figures(results: dict[str, list[dict]], runs: Path, out: Path) -> list[Path]:
    """The pictures: final samples of each row (first seed), evolutions, PGAN Fig. 3's tables."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from sharedgan.plots import plot_run
    from sharedgan.storage.runfile import read_run_file

    out.mkdir(parents=True, exist_ok=True)
    written = [out / "final_samples.png"] if final_samples(results, runs, out / "final_samples.png") else []
    for name in ("pgan-fig2", "mgan-fig2", "pgan-fig3"):
        if results.get(name):
            run_dir = runs / name / f"seed{results[name][0]['seed']}"
            plot_run(run_dir)
            target = out / f"{name}_evolution.png"
            target.write_bytes((run_dir / "evolution.png").read_bytes())
            written.append(target)
    if results.get("pgan-fig3"):
        data = read_run_file(runs / "pgan-fig3" / f"seed{results['pgan-fig3'][0]['seed']}" / "run.h5")
        tables, rounds = data["eval/generator_table"], data["eval/round"]
        shown = np.unique(np.linspace(0, len(rounds) - 1, min(len(rounds), 6)).round().astype(int))
        fig, axes = plt.subplots(1, len(shown), figsize=(2.6 * len(shown), 3.2), squeeze=False)
        for ax, i in zip(axes[0], shown):
            t = tables[i][:, :-1].astype(float)  # generator × mode, the last column is "no mode"
            ax.imshow(t / np.maximum(t.sum(1, keepdims=True), 1), cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"round {int(rounds[i]) + 1}", fontsize=9)
            ax.set_xlabel("mode", fontsize=8)
            ax.set_ylabel("generator", fontsize=8)
        fig.suptitle("PGAN Fig. 3: share of each generator's high-quality samples per mode (K = 10, ring8)", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / "pgan-fig3_tables.png", dpi=90)
        plt.close(fig)
        written.append(out / "pgan-fig3_tables.png")
    return written


def train_all(run, jobs: list, results: dict[str, list[dict]], processes: int) -> None:
    """``run(job)`` for every job, a fresh process each, ``processes`` at a time; each result goes
    to its row of ``results`` as it comes (printed), then every row is put in seed order."""
    print(f"{len(jobs)} runs to train, {sum(map(len, results.values()))} already done", flush=True)
    with ProcessPoolExecutor(processes, max_tasks_per_child=1) as pool:
        for done in as_completed([pool.submit(run, job) for job in jobs]):
            r = done.result()
            results[r["name"]].append(r)
            print(f"{r['name']} seed {r['seed']}: {r['modes']}/{r['num_modes']} modes, {r['high_quality']:.1%} hq, "
                  f"KL {r['kl']:.3f}, {r['train_seconds']:.0f} s", flush=True)
    for rows in results.values():
        rows.sort(key=lambda r: r["seed"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("--only", default="", help="comma-separated experiment names (default: all, in the order above)")
    ap.add_argument("--report-only", action="store_true",
                    help="train nothing: the table and figures of the finished runs")
    ap.add_argument("--rounds", type=int, help="train every row for this many rounds instead (a quick look)")
    ap.add_argument("--runs", default="runs/reproduce", help="where the run directories go")
    ap.add_argument("--out", default="docs/reproduce-2d", help="where results.md and figures/ go")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or list(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        sys.exit(f"error: unknown experiment {', '.join(unknown)}; choose from {', '.join(EXPERIMENTS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    runs, out = Path(args.runs), Path(args.out)
    results = {n: [] for n in names}
    jobs = []
    for name in names:
        for seed in seeds:
            saved = runs / name / f"seed{seed}" / "result.json"
            if saved.is_file():
                results[name].append(json.loads(saved.read_text()))
            elif not args.report_only:
                jobs.append((name, seed, runs / name / f"seed{seed}", args.rounds))
    train_all(run_one, jobs, results, args.jobs)
    out.mkdir(parents=True, exist_ok=True)
    pictures = figures(results, runs, out / "figures")
    text = ("# 2-D reproductions\n\nProduced by `python examples/studies/reproduce_2d.py` "
            "(sequential engine, one thread "
            "per run; each row states its rounds and seeds).\n\n"
            + table(results) + "\n\n" + "\n".join(f"![{p.stem}](figures/{p.name})" for p in pictures) + "\n")
    (out / "results.md").write_text(text)
    print("\n" + table(results) + f"\n\nwrote {out / 'results.md'} and {len(pictures)} figures", flush=True)


if __name__ == "__main__":
    main()
