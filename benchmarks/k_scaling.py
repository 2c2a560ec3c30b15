"""Seconds per round against K, with C's step on every other slot (Algorithm 1) and with
``--classifier-negatives N``, side by side in one run.

    python benchmarks/k_scaling.py [--k 4,8,16,32,64] [--negatives 128] [--rounds 20] [--repeats 3]
                                   [--dataset ring8] [--engine sequential] [--out runs/k-scaling]

For each K the two settings alternate (all, negatives, all, ...) so that drift of a shared machine
hits both alike. Prints a Markdown table of medians: s/round, s/round per generator (flat in K is
linear cost), and the per-round compute of D, C and the generators (summed over the K) from the
run's time breakdown (run.h5 ``time/<role>/compute``), the first round left out (warm-up).
"""
import argparse
import platform
import statistics

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
    args = ap.parse_args()
    print(f"{platform.machine()}, {torch.get_num_threads()} torch threads available, torch {torch.__version__}; "
          f"{args.dataset}, engine {args.engine}, m = {args.batch_size}, {args.rounds} rounds, "
          f"medians of {args.repeats}\n")
    print("| K | C's negatives | s/round | s/round per generator | D | C | generators |\n|---|---|---|---|---|---|---|")
    for k in (int(x) for x in args.k.split(",")):
        runs = {0: [], args.negatives: []}
        for repeat in range(args.repeats):
            for n in (0, args.negatives) if repeat % 2 == 0 else (args.negatives, 0):
                runs[n].append(one(k, n, repeat, args))
        for n, label in ((0, f"all {(k - 1) * args.batch_size}"), (args.negatives, f"N = {args.negatives}")):
            med = {key: statistics.median(r[key] for r in runs[n]) for key in runs[n][0]}
            print(f"| {k} | {label} | {med['round']:.4f} | {med['round'] / k:.4f} | {med['discriminator']:.4f} | "
                  f"{med['classifier']:.4f} | {med['generator']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
