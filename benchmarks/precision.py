"""Seconds per round and slot-buffer bytes in float32 against bf16, side by side in one run.

    python benchmarks/precision.py [--cases ring8:8,images32:2] [--settings fp32,bf16,bf16-slots]
                                   [--rounds 40] [--repeats 3] [--engine sequential] [--width 64] [--threads 1]

Each case is DATASET:K: ring8 (the MLPs) or images32 / images64 (the DCGAN models at --width on
generated random images; cost depends on the shape, not the content; no download). Settings:
fp32 (the default), bf16 (``--precision bf16``: the models under autocast), bf16-slots
(``--slot-precision bf16``: the buffer's batches and gradients), both. For each case the settings
train in turn, repeat after repeat, so drift of a shared machine hits all alike; training time
excludes start-up and evaluation. Prints a Markdown table: median seconds per round, the median of
the per-repeat ratios to fp32 (below 1: faster), and the slot buffer's size.
bf16 models pay only where matrix products and convolutions run on bf16 units (AMX or AVX512-BF16
on a CPU, tensor cores on a GPU); the processor's flags are printed with the table.
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
from sharedgan.roles.build import model_spec  # noqa: E402
from sharedgan.runtime.buffer import buffer_bytes, fields_of  # noqa: E402

SETTINGS = {"fp32": {}, "bf16": dict(precision="bf16"), "bf16-slots": dict(slot_precision="bf16"),
            "both": dict(precision="bf16", slot_precision="bf16")}


def run_config(setting: str, dataset: str, k: int, args, root: str) -> TrainConfig:
    images = dataset.startswith("images")
    extra = (dict(dataset=generated_images(root, dataset), width=args.width, data_dir=os.path.join(root, "data"),
                  eval_samples=8) if images else dict(dataset=dataset, eval_samples=500))
    return TrainConfig(engine=args.engine, k=k, rounds=args.rounds, threads=args.threads, eval_every=args.rounds,
                       checkpoint_every=args.rounds, tensorboard="off",
                       out=os.path.join(root, f"{dataset}-{k}-{setting}"), **extra, **SETTINGS[setting])


def seconds_per_round(config: TrainConfig) -> float:
    return train(config, force=True).train_seconds / config.rounds


def slot_megabytes(config: TrainConfig) -> float:
    config = config.validate()
    return buffer_bytes(fields_of(config, model_spec(config).sample_shape), config.k) / 2**20


def bf16_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    return ", ".join(f for f in ("avx512_bf16", "amx_bf16") if f in flags.split()) or "none"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="ring8:8,images32:2", help="DATASET:K, comma-separated")
    ap.add_argument("--settings", default="fp32,bf16,bf16-slots", help=f"of {', '.join(SETTINGS)}; fp32 first")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engine", default="sequential")
    ap.add_argument("--width", type=int, default=64, help="DCGAN base width (image cases)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    settings = args.settings.split(",")
    if settings[0] != "fp32" or not set(settings) <= set(SETTINGS):
        ap.error(f"--settings: fp32 first, then any of {', '.join(SETTINGS)}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, bf16 units: {bf16_flags()}; engine {args.engine}, "
          f"{args.rounds} rounds, {args.threads} thread(s) per process, {args.repeats} repeats of every setting\n")
    print("| case | K | setting | s/round | ÷ fp32 (median of repeats) | slot buffer MB |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        for case in args.cases.split(","):
            dataset, k = case.split(":")
            configs = {name: run_config(name, dataset, int(k), args, root) for name in settings}
            times = {name: [] for name in settings}
            for _ in range(args.repeats):
                for name in settings:
                    times[name].append(seconds_per_round(configs[name]))
            what = f"{dataset} (DCGAN width {args.width})" if dataset.startswith("images") else f"{dataset} (MLP)"
            for name in settings:
                ratio = statistics.median(t / f for t, f in zip(times[name], times["fp32"]))
                print(f"| {what} | {k} | {name} | {statistics.median(times[name]):.4f} | {ratio:.2f} "
                      f"| {slot_megabytes(configs[name]):.2f} |", flush=True)


if __name__ == "__main__":
    main()
