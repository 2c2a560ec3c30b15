"""Within-generator diversity for image runs: does each generator still use its noise?

A mixture can cover every class while single generators have collapsed: generator k draws the
same picture whatever its z. Class coverage does not see that (one perfect 7 is a covered class),
so every image evaluation also reports each generator's *spread*: the mean pairwise L2 distance
between its samples, divided by the same mean over real images of the data set, both taken on the
pictures average-pooled to ``COARSE`` × ``COARSE`` pixels — so that pixel noise which differs from
sample to sample (a generator's checkerboard) does not count as variety. 1 means "as varied as
the data set"; one class of real digits scores 0.53–0.92 (the 10 classes of scikit-learn's digits,
measured); a generator that ignores its noise scores near 0 (0.05–0.09 measured). Below
``COLLAPSED`` a generator is reported as collapsed.

Distance between coarse pictures is crude (it does not know that a shifted stroke is the same
digit), but it needs no trained network, works on unlabelled data, and what it flags — nearly the
same picture every time — is exactly what it measures. It measures variety, not likeness to the
data: a generator that draws varied noise is not flagged (seen on real digits with minibatch
discrimination; look at the grids).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from sharedgan.data.images import from_uint8, real_subset

COLLAPSED = 0.25


COARSE = 8


MAX_PER_GENERATOR = 256  # pairwise distances are O(n²): 32,640 pairs (64 samples gave the 2,500-sample value ±0.02)


def spread(images: torch.Tensor) -> float:
    """Mean pairwise L2 distance between the images of a batch (float [N, C, H, W]), pooled to
    at most COARSE × COARSE pixels first; NaN below 2 images."""
    if len(images) < 2:
        return float("nan")
    h, w = images.shape[-2:]
    if h > COARSE or w > COARSE:
        images = F.adaptive_avg_pool2d(images, (min(h, COARSE), min(w, COARSE)))
    return float(torch.pdist(images.flatten(1).double()).mean())


def reference_spread(images, seed: int = 0) -> float:
    """``spread`` of up to MAX_PER_GENERATOR real images (uint8 [N, H, W, C], an array or an h5py
    dataset) picked at random with ``seed``."""
    return spread(from_uint8(real_subset(images, MAX_PER_GENERATOR, seed, "spread-real")))


def generator_spread(samples: torch.Tensor, generator_ids: torch.Tensor, k: int, reference: float) -> np.ndarray:
    """Each generator's spread relative to ``reference`` ([K]; NaN for a generator with < 2
    samples, and for all when ``reference`` is 0)."""
    out = np.full(k, np.nan)
    if not reference > 0:  # real images all alike: nothing to compare with
        return out
    for g in range(k):
        mine = samples[generator_ids == g][:MAX_PER_GENERATOR]
        out[g] = spread(mine) / reference
    return out


def collapsed(ratios: np.ndarray) -> list[int]:
    """The generators whose spread is below COLLAPSED."""
    return [g for g, r in enumerate(ratios) if r < COLLAPSED]


def format_spread(ratios: np.ndarray) -> str:
    gone = collapsed(ratios)
    lines = ["spread per generator (mean pairwise distance of its samples ÷ that of real images; 1 = as varied "
             "as the data)",
             "gen  " + " ".join(f"{g:>5d}" for g in range(len(ratios))),
             "     " + " ".join(f"{r:>5.2f}" for r in ratios)]
    if np.isnan(ratios).any():
        lines.append("     (nan: fewer than 2 samples of that generator, or real images that are all alike)")
    if gone:
        lines.append(f"collapsed           {len(gone)}/{len(ratios)} (generator {', '.join(map(str, gone))}: spread < "
                     f"{COLLAPSED:g}, the same picture whatever the noise)")
    else:
        lines.append(f"collapsed           0/{len(ratios)} (no generator below spread {COLLAPSED:g})")
    return "\n".join(lines)

