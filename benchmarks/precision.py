"""Seconds per round in float32 against --precision bf16, side by side in one run.

    python benchmarks/precision.py [--cases ring8:8,images32:2] [--rounds 40] [--repeats 3]
                                   [--engine sequential] [--width 64] [--threads 1]

Each case is DATASET:K: ring8 (the MLPs) or images32 / images64 (the DCGAN models at --width on
generated random images; cost depends on the shape, not the content; no download). For each case
the two precisions train alternately (fp32, bf16, fp32, ...), so drift of a shared machine hits
both alike; training time excludes start-up and evaluation. Prints a Markdown table: median seconds
per round of each, and the median of the per-pair ratios bf16 / fp32 (below 1: bf16 is faster).
bf16 pays only where matrix products and convolutions run on bf16 units (AMX or AVX512-BF16 on a
CPU, tensor cores on a GPU); the processor's flags are printed with the table.
"""
import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from engines import generated_images  # noqa: E402 - the random image set the engine benchmark uses

from sharedgan import TrainConfig, train  # noqa: E402


def seconds_per_round(precision: str, dataset: str, k: int, args, root: str) -> float:
    images = dataset.startswith("images")
    extra = (dict(dataset=generated_images(root, dataset), width=args.width, data_dir=os.path.join(root, "data"),
                  eval_samples=8) if images else dict(dataset=dataset, eval_samples=500))
    cfg = TrainConfig(engine=args.engine, k=k, rounds=args.rounds, threads=args.threads, precision=precision,
                      eval_every=args.rounds, checkpoint_every=args.rounds, tensorboard="off",
                      out=os.path.join(root, f"{dataset}-{k}-{precision}"), **extra)
    return train(cfg, force=True).train_seconds / args.rounds


def bf16_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    return ", ".join(f for f in ("avx512_bf16", "amx_bf16") if f in flags.split()) or "none"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="ring8:8,images32:2", help="DATASET:K, comma-separated")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engine", default="sequential")
    ap.add_argument("--width", type=int, default=64, help="DCGAN base width (image cases)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, bf16 units: {bf16_flags()}; engine {args.engine}, "
          f"{args.rounds} rounds, {args.threads} thread(s) per process, {args.repeats} alternating pairs\n")
    print("| case | K | fp32 s/round | bf16 s/round | bf16 / fp32 (median of pairs) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        for case in args.cases.split(","):
            dataset, k = case.split(":")
            pairs = [(seconds_per_round("fp32", dataset, int(k), args, root),
                      seconds_per_round("bf16", dataset, int(k), args, root)) for _ in range(args.repeats)]
            what = f"{dataset} (DCGAN width {args.width})" if dataset.startswith("images") else f"{dataset} (MLP)"
            print(f"| {what} | {k} | {statistics.median(p[0] for p in pairs):.4f} "
                  f"| {statistics.median(p[1] for p in pairs):.4f} "
                  f"| {statistics.median(b / a for a, b in pairs):.2f} |", flush=True)


if __name__ == "__main__":
    main()
