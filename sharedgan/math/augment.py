"""Differentiable augmentation (DiffAugment, Zhao et al. 2020), ``--augment``.

D sees real and generated images through the same random, differentiable transformations, so on
a small data set it cannot memorise the real images, and the generator's gradient still flows
through the transformation back to its own, un-augmented sample. The three policies of the paper,
as its reference code does them on images in [−1, 1]:

* ``color``: brightness + U(−0.5, 0.5); saturation: the deviation from the per-pixel channel mean
  × U(0, 2); contrast: the deviation from the image mean × U(0.5, 1.5);
* ``translation``: a shift by up to 1/8 of the side in each direction, zeros moved in;
* ``cutout``: a square of half the side, centred anywhere in the image, set to zero.

Every random number comes from the ``torch.Generator`` given (a named stream per slot and round:
the engines augment alike), drawn on the CPU in a fixed order, one value or offset per image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

AUGMENTATIONS = ("color", "translation", "cutout")


def policy(text: str) -> tuple[str, ...]:
    """``--augment``'s value as the policies to apply, in the paper's order (color first)."""
    if text == "off":
        return ()
    wanted = set(text.split(","))
    return tuple(p for p in AUGMENTATIONS if p in wanted)


def _uniform(n: int, gen: torch.Generator, x: torch.Tensor) -> torch.Tensor:
    return torch.rand((n, 1, 1, 1), generator=gen).to(device=x.device, dtype=x.dtype)


def color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    x = x + (_uniform(n, gen, x) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(n, gen, x) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(n, gen, x) + 0.5) + mean


def translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), generator=gen)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), generator=gen)
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    rows = (rows[None] + dy + 1).clamp(0, h + 1).to(x.device)  # indices into the 1-pixel zero padding
    cols = (cols[None] + dx + 1).clamp(0, w + 1).to(x.device)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=gen)
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=gen)
    ys, xs = torch.meshgrid(torch.arange(ch), torch.arange(cw), indexing="ij")
    ys = (ys[None] + oy - ch // 2).clamp(0, h - 1)
    xs = (xs[None] + ox - cw // 2).clamp(0, w - 1)
    mask = torch.ones(n, h, w)
    mask[torch.arange(n)[:, None, None], ys, xs] = 0
    return x * mask.to(device=x.device, dtype=x.dtype)[:, None]


_APPLY = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policies: tuple[str, ...], gen: torch.Generator) -> torch.Tensor:
    """``x`` [N, C, H, W] through ``policies`` (see :func:`policy`), differentiably in x."""
    for name in policies:
        x = _APPLY[name](x, gen)
    return x
