"""Soak test: a long ring8 run at K = 8 with the resident memory of every process sampled over time.

    python examples/studies/soak.py --minutes 30 [--interval 30] [--warmup 2] [--out runs/soak]

Launches `sharedgan launch --k 8` (parallel engine, endless rounds), samples VmRSS of the runner
and of every role from /proc every --interval seconds, stops the run with Ctrl-C (SIGINT) after
--minutes, and prints one row per process: RSS after the warm-up, at the end, the range over the
sampled period, and the drift. Writes rss.csv and rss.png into --out. Exits 1 if any process
drifts by more than --tolerance (default 10%) after the warm-up, or the run does not stop cleanly.
"""
import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--interval", type=float, default=30.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=2.0, help="minutes before the baseline sample")
    ap.add_argument("--tolerance", type=float, default=0.10)
    ap.add_argument("--out", default="runs/soak")
    ap.add_argument("extra", nargs="*", help="more `sharedgan launch` options, after --")
    args = ap.parse_args()
    out = Path(args.out)
    run_dir = out / "run"
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "sharedgan", "launch", "--k", "8", "--rounds", "100000000", "--out", str(run_dir),
           "--force", "--quiet", *args.extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = run_dir / "logs" / "runner.log"
    while not (log.exists() and "training started" in log.read_text()):
        if proc.poll() is not None:
            sys.exit(f"launch ended early: {proc.communicate()[1]}")
        time.sleep(0.2)
    pids = json.loads((run_dir / "processes.json").read_text())
    names = list(pids)
    t0 = time.monotonic()
    rows = []
    print(f"sampling {len(names)} processes every {args.interval:g} s for {args.minutes:g} min", flush=True)
    while (elapsed := time.monotonic() - t0) < args.minutes * 60:
        rows.append([elapsed] + [rss_mib(pids[n]) for n in names])
        total = sum(v for v in rows[-1][1:] if v)
        print(f"{elapsed / 60:6.1f} min  total RSS {total:8.1f} MiB", flush=True)
        time.sleep(min(args.interval, max(0.0, args.minutes * 60 - (time.monotonic() - t0))))
    rows.append([time.monotonic() - t0] + [rss_mib(pids[n]) for n in names])
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    with open(out / "rss.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seconds"] + names)
        w.writerows(rows)
    base_i = next((i for i, r in enumerate(rows) if r[0] >= args.warmup * 60), 0)
    ok = proc.returncode == 130
    import h5py
    with h5py.File(run_dir / "run.h5") as f:
        rounds = int(f.attrs["rounds_completed"])
    print(f"\n{rounds} rounds in {rows[-1][0] / 60:.1f} min (exit code {proc.returncode}); "
          f"machine: {os.cpu_count()} cores; baseline at {rows[base_i][0] / 60:.1f} min")
    print(f"{'process':>14} {'baseline MiB':>12} {'end MiB':>8} {'min':>8} {'max':>8} {'drift':>7} {'range':>7}")
    for j, name in enumerate(names, start=1):
        series = [r[j] for r in rows[base_i:] if r[j] is not None]
        base, end = series[0], series[-1]
        drift, spread = (end - base) / base, (max(series) - min(series)) / base
        ok &= abs(drift) <= args.tolerance and spread <= args.tolerance
        print(f"{name:>14} {base:12.1f} {end:8.1f} {min(series):8.1f} {max(series):8.1f} {drift:+7.1%} {spread:7.1%}")
    _plot(rows, names, out / "rss.png")
    print(f"\n{'PASS' if ok else 'FAIL'}: every process within {args.tolerance:.0%} after the warm-up "
          f"({out / 'rss.csv'}, {out / 'rss.png'})")
    if stderr.strip():
        print(stderr.strip().splitlines()[-1])
    sys.exit(0 if ok else 1)


def _plot(rows, names, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.5))
    minutes = [r[0] / 60 for r in rows]
    for j, name in enumerate(names, start=1):
        ax.plot(minutes, [r[j] for r in rows], label=name)
    ax.set_xlabel("minutes of training")
    ax.set_ylabel("resident memory (MiB)")
    ax.set_title("sharedgan soak: RSS of every process, ring8, K = 8")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
