"""Seconds per round against K, with C's step on every other slot (Algorithm 1) and with
``--classifier-negatives N``, side by side in one run.

    python benchmarks/k_scaling.py [--k 4,8,16,32,64] [--negatives 128] [--rounds 20] [--repeats 3]
                                   [--dataset ring8] [--engine sequential] [--out runs/k-scaling]
                                   [--png docs/k-scaling.png]

For each K the two settings alternate (all, negatives, all, ...) so that drift of a shared machine
hits both alike. Prints a Markdown table of medians: s/round, s/round per generator (flat in K is
linear cost), and the per-round compute of D, C and the generators (summed over the K) from the
run's time breakdown (run.h5 ``time/<role>/compute``), the first round left out (warm-up).
``--png`` also draws both settings' seconds per round, and per generator, against K.
"""
import argparse
import platform
import statistics
from pathlib import Path

import torch

from sharedgan import TrainConfig, train
from sharedgan.storage.runfile import read_run_file


def one(k: int, negatives: int, repeat: int, args) -> dict:
    cfg = TrainConfig(k=k, rounds=args.rounds, dataset=args.dataset, engine=args.engine, seed=repeat,
                      classifier_negatives=negatives, batch_size=args.batch_size, eval_every=args.rounds,
                      checkpoint_every=args.rounds, eval_samples=200, realness="off",
                      out=f"{args.out}/k{k}-n{negatives}-r{repeat}")
    result = train(cfg, force=True)
    data = read_run_file(result.run_dir / "run.h5")
    part = {name: float(data[f"time/{name}/compute"][1:].sum(axis=tuple(range(1, data[f"time/{name}/compute"].ndim)))
                        .mean()) for name in ("discriminator", "classifier", "generator")}
    return dict(round=float(data["time/round"][1:].mean()), **part)


def draw(medians: dict[int, dict[int, dict]], negatives: int, title: str, path: Path) -> None:
    """Two panels, log-log: s/round and s/round per generator against K, one line per setting."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ks = sorted(medians)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for n, label, style in ((0, "C on every other slot (Algorithm 1)", "o-"),
                            (negatives, f"--classifier-negatives {negatives}", "s-")):
        per_round = [medians[k][n]["round"] for k in ks]
        axes[0].plot(ks, per_round, style, label=label)
        axes[1].plot(ks, [t / k for t, k in zip(per_round, ks)], style, label=label)
    for ax, ylabel in zip(axes, ("s/round", "s/round per generator")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("K (generators)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", default="4,8,16,32,64")
    ap.add_argument("--negatives", type=int, default=128, help="N of --classifier-negatives (default: one batch)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--dataset", default="ring8")
    ap.add_argument("--engine", default="sequential")
    ap.add_argument("--out", default="runs/k-scaling")
    ap.add_argument("--png", type=Path, help="also draw s/round against K for both settings into this file")
    args = ap.parse_args()
    setting = (f"{args.dataset}, engine {args.engine}, m = {args.batch_size}, {args.rounds} rounds, "
               f"medians of {args.repeats}, one thread")
    print(f"{platform.machine()}, {torch.get_num_threads()} torch threads available, torch {torch.__version__}; "
          f"{setting}\n")
    medians: dict[int, dict[int, dict]] = {}
    print("| K | C's negatives | s/round | s/round per generator | D | C | generators |\n|---|---|---|---|---|---|---|")
    for k in (int(x) for x in args.k.split(",")):
        runs = {0: [], args.negatives: []}
        for repeat in range(args.repeats):
            for n in (0, args.negatives) if repeat % 2 == 0 else (args.negatives, 0):
                runs[n].append(one(k, n, repeat, args))
        for n, label in ((0, f"all {(k - 1) * args.batch_size}"), (args.negatives, f"N = {args.negatives}")):
            med = medians.setdefault(k, {})[n] = {key: statistics.median(r[key] for r in runs[n]) for key in runs[n][0]}
            print(f"| {k} | {label} | {med['round']:.4f} | {med['round'] / k:.4f} | {med['discriminator']:.4f} | "
                  f"{med['classifier']:.4f} | {med['generator']:.4f} |", flush=True)
    if args.png:
        draw(medians, args.negatives, f"{setting}, torch {torch.__version__}", args.png)
        print(f"\nwrote {args.png}")


if __name__ == "__main__":
    main()
