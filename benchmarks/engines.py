"""Rounds per second of the sequential and parallel engines, side by side in one run.

    python benchmarks/engines.py --k 2,4,8 --rounds 300 --repeats 2 [--dataset ring8] [--threads 1]

For every K the two engines run alternately (sequential, parallel, sequential, ...), so drift of a
shared machine hits both alike. Training time excludes start-up and evaluation (one evaluation at
the end). Prints a Markdown table: median rounds/s of each engine, their ratio, median start-up.
"""
import argparse
import os
import platform
import statistics
import tempfile

from sharedgan import TrainConfig, train


def one(engine: str, k: int, args, root: str) -> tuple[float, float]:
    cfg = TrainConfig(engine=engine, k=k, rounds=args.rounds, dataset=args.dataset, threads=args.threads,
                      eval_every=args.rounds, eval_samples=500, checkpoint_every=args.rounds,
                      out=os.path.join(root, f"{engine}-k{k}"))
    res = train(cfg, force=True)
    return args.rounds / res.train_seconds, res.startup_seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", default="2,4,8")
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dataset", default="ring8")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
          f"{args.dataset}, {args.rounds} rounds, {args.threads} thread(s) per process, {args.repeats} repeats\n")
    print("| K | sequential rounds/s | parallel rounds/s | parallel / sequential | parallel start-up s |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        for k in [int(v) for v in args.k.split(",")]:
            seq, par, start = [], [], []
            for _ in range(args.repeats):
                seq.append(one("sequential", k, args, root)[0])
                rate, up = one("parallel", k, args, root)
                par.append(rate)
                start.append(up)
            s, p = statistics.median(seq), statistics.median(par)
            print(f"| {k} | {s:.1f} | {p:.1f} | {p / s:.2f} | {statistics.median(start):.1f} |", flush=True)


if __name__ == "__main__":
    main()
