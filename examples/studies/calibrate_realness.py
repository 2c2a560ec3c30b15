"""Where the line between real and unreal lies: PRDC of constructed "generators" on real digits.

    pip install scikit-learn
    python examples/studies/calibrate_realness.py [--runs runs/digits] [--m 179] [RUN ...]

Judges, like a generator of an image run (``sharedgan.eval.realness``: the coverage classifier's
features, k = 5, M samples each), sets whose answer is known: held-out real digits (what a perfect
generator scores), the same digits blurred, shifted, with pixel noise added, one digit repeated
(collapse: precision can be high, spread flags it), uniform and Gaussian noise, and smooth random
blobs. Each RUN given (an image run on the same digits) adds one row per generator of its latest
checkpoint. Prints a table; ``UNREAL`` in ``eval/realness.py`` sits between what looks like digits
and what does not.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    w = torch.exp(-t ** 2 / (2 * sigma ** 2))
    w = w / w.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (radius,) * 4, mode="replicate"), w.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, w.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def main():
    from real_digits import write_digits

    from sharedgan.data.images import from_uint8, load
    from sharedgan.eval.coverage import _splits, classifier_for, realness_judge
    from sharedgan.eval.realness import METRICS, UNREAL, prdc
    from sharedgan.eval.spread import reference_spread, spread
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="runs/digits", help="where real_digits.py keeps digits32.npz and its caches")
    ap.add_argument("--m", type=int, default=179, help="samples per row (179: all held-out digits)")
    ap.add_argument("run", nargs="*", help="image runs on the same digits: one row per generator")
    args = ap.parse_args()
    path = Path(args.runs) / "digits32.npz"
    if not path.exists():
        write_digits(path)
    data = load(str(path), str(path.parent))
    classifier, _ = classifier_for(data)
    judge = realness_judge(classifier, data)
    (_, _, _), (test_x, _, test_idx) = _splits(data, classifier.seed)
    held = from_uint8(np.asarray(test_x[test_idx]))[:args.m]
    gen = torch.Generator().manual_seed(0)
    n, shape = len(held), held.shape[1:]
    smooth = blur(torch.randn((n, *shape), generator=gen), 3.0)
    smooth = smooth / smooth.abs().amax(dim=(1, 2, 3), keepdim=True)
    rows = {
        "held-out real digits": held,
        "blurred, σ = 1 px": blur(held, 1.0), "blurred, σ = 1.5 px": blur(held, 1.5),
        "blurred, σ = 2 px": blur(held, 2.0), "blurred, σ = 3 px": blur(held, 3.0),
        "shifted 3 px": torch.roll(held, 3, dims=3),
        "pixel noise σ = 0.3 added": (held + 0.3 * torch.randn(held.shape, generator=gen)).clamp(-1, 1),
        "pixel noise σ = 0.6 added": (held + 0.6 * torch.randn(held.shape, generator=gen)).clamp(-1, 1),
        "one digit repeated": held[:1].expand(n, *shape),
        "uniform noise": torch.rand((n, *shape), generator=gen) * 2 - 1,
        "Gaussian noise, σ = 0.5": (0.5 * torch.randn((n, *shape), generator=gen)).clamp(-1, 1),
        "smooth random blobs": smooth,
    }
    from sharedgan.runs import load_run
    for run_dir in args.run:
        run = load_run(run_dir)
        samples, which = run.sample(n * run.config.k, seed=0)
        for g in range(run.config.k):
            rows[f"{Path(run_dir).name}, generator {g}"] = samples[which == g][:n]
    ref_spread = reference_spread(data.images, 0)
    print(f"PRDC, k = {judge.k}, {judge.reference.shape[0]} reference digits, M = {n} per row; "
          f"classifier accuracy {classifier.accuracy:.1%}; UNREAL = precision < {UNREAL:g}")
    print(f"| set | {' | '.join(METRICS)} | spread |")
    print("|---" * (len(METRICS) + 2) + "|")
    for name, x in rows.items():
        r = prdc(judge.reference, judge.radii, judge._features(x.float()), judge.k)
        print(f"| {name} | " + " | ".join(f"{r[m]:.3f}" for m in METRICS) + f" | {spread(x) / ref_spread:.2f} |")


if __name__ == "__main__":
    main()
