"""The teacher's model (HGAN): which one a run builds.

2-D data: the mixture-density network of :mod:`sharedgan.models.mdn`. Images: the gated PixelCNN
of :mod:`sharedgan.models.pixelcnn`. Both have ``log_prob(x) -> [n]`` (nats) and
``sample(n, generator)``. Their file: :mod:`sharedgan.storage.teacher_file`.
"""

from __future__ import annotations

import math

import torch


def kind_of(sample_shape: tuple[int, ...]) -> str:
    return "mdn" if len(sample_shape) == 1 else "pixelcnn"


def mean_nll(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The teacher's mean NLL of x: nats per sample for 2-D data, bits per dimension for images."""
    nll = -net.log_prob(x).mean()
    return nll / (math.log(2) * x[0].numel()) if x.dim() > 2 else nll


def build_teacher(sample_shape: tuple[int, ...], width: int, components: int, seed: int) -> torch.nn.Module:
    """A fresh teacher for samples of ``sample_shape``, initialised from ``seed``."""
    if kind_of(sample_shape) == "mdn":
        from sharedgan.models.mdn import mdn_teacher
        return mdn_teacher(components, width, seed)
    from sharedgan.models.pixelcnn import pixelcnn_teacher
    return pixelcnn_teacher(tuple(sample_shape), width, seed)
