"""The acceptance study of the default launch: `sharedgan launch` on ring8 (K = 8, its defaults) for
several seeds, then 2,500 samples from `sharedgan sample`, scored against the default launch's target (docs/results.md).

    python examples/studies/ring8_seeds.py --seeds 1,2,3 [--engine parallel] [--out runs/seeds]

Prints one row per seed (wall time of the launch, modes covered, high-quality share, KL) and
exits 1 if any seed misses the floor (8/8 modes with >= 1% each, >= 90% high quality).
"""
import argparse
import subprocess
import sys
import time
from pathlib import Path

import h5py
import torch

from sharedgan.data.mixtures import make_dataset
from sharedgan.eval.modes import mode_report


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--engine", default="parallel")
    ap.add_argument("--out", default="runs/seeds")
    ap.add_argument("extra", nargs="*", help="more `sharedgan launch` options, after --")
    args = ap.parse_args()
    ok = True
    print(f"{'seed':>4} {'engine':>10} {'wall s':>7} {'modes':>6} {'lenient':>7} {'high q':>7} {'KL':>7}")
    for seed in [int(s) for s in args.seeds.split(",")]:
        out = Path(args.out) / f"{args.engine}-seed{seed}"
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "sharedgan", "launch", "--seed", str(seed), "--engine", args.engine,
                        "--out", str(out), "--force", "--quiet", *args.extra], check=True)
        wall = time.monotonic() - t0
        samples = out / "samples-2500.h5"
        subprocess.run([sys.executable, "-m", "sharedgan", "sample", str(out), "--n", "2500", "--out", str(samples),
                        "--force"], check=True, stdout=subprocess.DEVNULL)
        with h5py.File(samples) as f:
            x, g = torch.from_numpy(f["samples"][()]), torch.from_numpy(f["generator"][()])
        data = make_dataset("ring8")
        rep = mode_report(x, g, data.centers, data.std, int(g.max()) + 1)
        ok &= rep.modes_covered == rep.num_modes and rep.high_quality >= 0.90
        print(f"{seed:>4} {args.engine:>10} {wall:>7.1f} {rep.modes_covered:>3}/{rep.num_modes:<2} "
              f"{rep.modes_covered_lenient:>4}/{rep.num_modes:<2} {rep.high_quality:>7.1%} {rep.kl_uniform:>7.4f}",
              flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
