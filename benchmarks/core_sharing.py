"""How much the machine's cores slow each other: the bound that two cores put on any parallel engine.

    python benchmarks/core_sharing.py [--dataset ring8] [--k 8] [--rounds 400] [--repeats 3]

A sequential training (one thread) is timed on core 0 alone, and again while a second training of
the same size runs on core 1 (both pinned with ``os.sched_setaffinity``). Had every core its own
execution units, caches and memory bandwidth, the two times would match; on a virtual machine whose
"cores" are hyperthreads of one physical core, or share a memory bus or a turbo budget, the second
is longer, and a parallel engine's round on those cores cannot be shorter than its critical path at
that slower speed. The two cases alternate repeat after repeat; the neighbour starts first and is
killed once the timed training ends. Training time excludes start-up and evaluation. Prints a
Markdown table: median seconds per round, the median and every value of the per-repeat ratios to
"alone", and the median per-round compute of D and C (run.h5's ``time/<role>/compute``, the first
round left out).
"""
import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROLES = ("discriminator", "classifier")


def _exit_with_parent() -> None:
    """A worker outlives no parent, however the parent died."""
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def worker(args) -> None:
    """One training pinned to ``args.core``; prints its timings as one line of JSON."""
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    os.sched_setaffinity(0, {args.core})
    from sharedgan import TrainConfig, train  # (after the pinning, so torch's threads inherit it)
    from sharedgan.storage.runfile import read_run_file
    config = TrainConfig(dataset=args.dataset, k=args.k, rounds=args.rounds, seed=args.core, engine="sequential",
                         threads=1, eval_every=args.rounds, checkpoint_every=args.rounds, eval_samples=500,
                         tensorboard="off", out=args.out)
    seconds = train(config, force=True).train_seconds / args.rounds
    data = read_run_file(Path(args.out) / "run.h5")
    print(json.dumps(dict(seconds=seconds, **{r: float(np.nanmedian(data[f"time/{r}/compute"][1:])) for r in ROLES})))


def run(args, root: str, beside: bool, repeat: int) -> dict:
    command = [sys.executable, __file__, "--worker", "--dataset", args.dataset, "--k", str(args.k)]
    neighbour, neighbour_log = None, os.path.join(root, f"neighbour{repeat}.log")
    if beside:  # long enough to outlast the timed run; killed below
        with open(neighbour_log, "w") as log:
            neighbour = subprocess.Popen(command + ["--core", "1", "--rounds", str(100 * args.rounds),
                                                    "--out", os.path.join(root, f"neighbour{repeat}")],
                                         stdout=subprocess.DEVNULL, stderr=log)
    try:
        done = subprocess.run(command + ["--core", "0", "--rounds", str(args.rounds),
                                         "--out", os.path.join(root, f"timed{repeat}-{int(beside)}")],
                              capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"the timed training failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        if neighbour is not None and neighbour.poll() is not None:  # then "beside" measured "alone"
            raise SystemExit(f"the neighbour training ended early:\n{Path(neighbour_log).read_text()[-2000:]}")
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="ring8", choices=("ring8", "grid25"), help="a built-in 2-D mixture")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--core", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    if not {0, 1} <= os.sched_getaffinity(0):
        ap.error("needs cores 0 and 1 (os.sched_getaffinity)")
    if args.k < 2 or args.rounds < 2 or args.repeats < 1:
        ap.error("--k and --rounds at least 2 (C's compute is a column; the first round is left out), --repeats 1")
    for stop in (signal.SIGTERM, signal.SIGHUP):  # so the neighbour is killed and the files go
        signal.signal(stop, lambda signum, frame: sys.exit(128 + signum))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; sequential engine, "
          f"{args.dataset}, K = {args.k}, {args.rounds} rounds, one thread, {args.repeats} alternating repeats\n")
    print("| core 0's training | s/round | ÷ alone (median of repeats) | each repeat | D compute ms | C compute ms |")
    print("|---|---|---|---|---|---|")
    cases = {"alone (core 1 idle)": False, "beside a training of the same size on core 1": True}
    with tempfile.TemporaryDirectory() as root:
        runs = {name: [] for name in cases}
        for repeat in range(args.repeats):
            for name in (list(cases) if repeat % 2 == 0 else list(cases)[::-1]):
                runs[name].append(run(args, root, cases[name], repeat))
    alone = runs[next(iter(cases))]
    for name, timings in runs.items():
        median = {key: statistics.median(t[key] for t in timings) for key in timings[0]}
        ratios = [t["seconds"] / a["seconds"] for t, a in zip(timings, alone)]
        print(f"| {name} | {median['seconds']:.4f} | {statistics.median(ratios):.2f} "
              f"| {', '.join(f'{r:.2f}' for r in ratios)} | {1e3 * median['discriminator']:.1f} "
              f"| {1e3 * median['classifier']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
