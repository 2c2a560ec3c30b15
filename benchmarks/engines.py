"""Rounds per second of the sequential and parallel engines, side by side in one run.

    python benchmarks/engines.py --k 2,4,8 --rounds 300 --repeats 2 [--dataset ring8] [--threads 1]
    python benchmarks/engines.py --k 2,4 --dataset images32 --width 8 --rounds 30   # DCGAN, 32 × 32

``--dataset images32`` (or images64) times the DCGAN models on generated random 32 × 32 × 3 images
(the content does not change the cost; no download), at ``--width`` (64 default, 8 smoke).

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


def generated_images(root: str, name: str) -> str:
    """A random uint8 image set in the documented .h5 schema: cost depends on shape, not content."""
    import h5py
    import numpy as np
    size = int(name.removeprefix("images"))
    path = os.path.join(root, f"{name}.h5")
    with h5py.File(path, "w") as f:
        f["images"] = np.random.default_rng(0).integers(0, 256, (2048, size, size, 3), dtype=np.uint8)
    return path


def one(engine: str, k: int, args, root: str) -> tuple[float, float]:
    images = args.dataset.startswith("images")
    dataset = generated_images(root, args.dataset) if images else args.dataset
    extra = (dict(width=args.width, data_dir=os.path.join(root, "data"), eval_samples=8)
             if images else dict(eval_samples=500))
    threads = args.sequential_threads or args.threads if engine == "sequential" else args.threads
    cfg = TrainConfig(engine=engine, k=k, rounds=args.rounds, dataset=dataset, threads=threads,
                      batch_size=args.batch_size, eval_every=args.rounds, checkpoint_every=args.rounds,
                      out=os.path.join(root, f"{engine}-k{k}"), **extra)
    res = train(cfg, force=True)
    return args.rounds / res.train_seconds, res.startup_seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", default="2,4,8")
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dataset", default="ring8")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sequential-threads", type=int, default=0,
                    help="torch threads of the one sequential process (default: --threads); the machine's core count "
                         "is the fair baseline for a user with one process")
    ap.add_argument("--width", type=int, default=64, help="DCGAN base width (image data sets)")
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args()
    what = f"{args.dataset} width {args.width}" if args.dataset.startswith("images") else args.dataset
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
          f"{what}, batch {args.batch_size}, {args.rounds} rounds, {args.threads} thread(s) per parallel process, "
          f"{args.sequential_threads or args.threads} for the sequential one, "
          f"{args.repeats} repeats\n")
    print("| K | sequential s/round | parallel s/round | sequential rounds/s | parallel rounds/s "
          "| parallel / sequential speed | parallel start-up s |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        for k in [int(v) for v in args.k.split(",")]:
            seq, par, start = [], [], []
            for _ in range(args.repeats):
                seq.append(one("sequential", k, args, root)[0])
                rate, up = one("parallel", k, args, root)
                par.append(rate)
                start.append(up)
            s, p = statistics.median(seq), statistics.median(par)
            print(f"| {k} | {1 / s:.3f} | {1 / p:.3f} | {s:.2f} | {p:.2f} | {p / s:.2f} "
                  f"| {statistics.median(start):.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
