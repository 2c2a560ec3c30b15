"""Seconds per round of the image defaults (R1 every 16th round, the resize generator) against the
papers' DCGAN (``--r1 0 --generator standard``), side by side in one run.

    python benchmarks/image_defaults.py [--dataset images32] [--k 4] [--width 16] [--rounds 48]
                                        [--repeats 3] [--threads 1]

``--dataset``: images32 / images64 (generated random images, as the engine benchmark's: cost depends
on the shape, not the content) or the path of your images, e.g. the ``digits32.npz`` that
``examples/studies/real_digits.py`` writes. The two settings alternate their order repeat after
repeat, so drift of a shared machine hits both alike; sequential engine; training time excludes
start-up and evaluation. Prints a Markdown table: median seconds per round, the median of the
per-repeat ratios to the papers' settings, and the median per-round compute of D, C and one
generator (run.h5's ``time/<role>/compute``, the first round left out).
"""
import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from engines import generated_images  # noqa: E402 - the random image set the engine benchmark uses

from sharedgan import TrainConfig, train  # noqa: E402
from sharedgan.storage.runfile import read_run_file  # noqa: E402

SETTINGS = {"papers' DCGAN (--r1 0 --generator standard)": dict(r1=0.0, generator="standard"),
            "image defaults (R1, resize)": {}}


def one(options: dict, repeat: int, dataset: str, args, out: str) -> dict:
    config = TrainConfig(dataset=dataset, data_dir=str(Path(dataset).parent), k=args.k, width=args.width,
                         rounds=args.rounds, seed=repeat, engine="sequential", threads=args.threads,
                         eval_every=args.rounds, checkpoint_every=args.rounds, eval_samples=8, realness="off",
                         tensorboard="off", out=out, **options)
    seconds = train(config, force=True).train_seconds / args.rounds
    data = read_run_file(Path(out) / "run.h5")
    compute = {role: float(np.nanmedian(data[f"time/{role}/compute"][1:])) for role in ("discriminator", "classifier")}
    compute["generator"] = float(np.nanmedian(data["time/generator/compute"][1:]))
    return dict(seconds=seconds, **compute)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="images32", help="images32, images64, or the path of your images")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--width", type=int, default=16, help="DCGAN base width")
    ap.add_argument("--rounds", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if args.k < 2:
        ap.error("--k: at least 2 (the classifier's compute is one of the columns)")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; sequential engine, K = {args.k}, width "
          f"{args.width}, {args.rounds} rounds, {args.threads} thread(s), {args.repeats} alternating repeats\n")
    print("| setting | s/round | ÷ papers' (median of repeats) | D compute s | C compute s | one generator's s |")
    print("|---|---|---|---|---|---|")
    names = list(SETTINGS)
    with tempfile.TemporaryDirectory() as root:
        dataset = generated_images(root, args.dataset) if args.dataset.startswith("images") else args.dataset
        runs = {name: [] for name in names}
        for repeat in range(args.repeats):
            for i, name in enumerate(names if repeat % 2 == 0 else names[::-1]):
                runs[name].append(one(SETTINGS[name], repeat, dataset, args, os.path.join(root, f"r{repeat}-{i}")))
        papers = runs[names[0]]
        for name in names:
            median = {key: statistics.median(r[key] for r in runs[name]) for key in runs[name][0]}
            ratio = statistics.median(r["seconds"] / p["seconds"] for r, p in zip(runs[name], papers))
            print(f"| {name} | {median['seconds']:.3f} | {ratio:.2f} | {median['discriminator']:.3f} "
                  f"| {median['classifier']:.3f} | {median['generator']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
