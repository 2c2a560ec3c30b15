"""The 2-D Gaussian mixtures of the papers' synthetic experiments.

``ring8``: 8 modes evenly spaced on a circle of radius 2, std 0.02 (PGAN §4.1, MGAN, PacGAN).
``grid25``: a 5 × 5 grid at {−4, −2, 0, 2, 4}², std 0.05.
Both are fully configurable (modes, radius, side, spacing, std) through :class:`DatasetOptions`.
Samples are drawn fresh every round, so there is no data set on disk to download or cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

DATASETS = ("ring8", "grid25")


@dataclass(frozen=True)
class GaussianMixture:
    """An equal-weight mixture of isotropic Gaussians."""

    centers: torch.Tensor  # [modes, dim]
    std: float

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.centers.shape[1],)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """The exact log density [n] of x [n, dim], in nats (the floor of any model's NLL)."""
        d = self.centers.shape[1]
        squared = ((x.unsqueeze(1) - self.centers.to(x)) ** 2).sum(-1) / (self.std ** 2)
        log_normal = -0.5 * squared - d * math.log(self.std) - 0.5 * d * math.log(2 * math.pi)
        return torch.logsumexp(log_normal, dim=1) - math.log(len(self.centers))

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(self.centers), (n,), generator=generator)
        noise = torch.randn((n, self.centers.shape[1]), generator=generator)
        return self.centers[idx] + self.std * noise


def ring(modes: int = 8, radius: float = 2.0, std: float = 0.02) -> GaussianMixture:
    angles = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
    centers = torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], dim=1)
    return GaussianMixture(centers.float(), std)


def grid(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> GaussianMixture:
    coords = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    xs, ys = torch.meshgrid(coords, coords, indexing="ij")
    centers = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)
    return GaussianMixture(centers.float(), std)


def make_dataset(name: str, ring_modes: int = 8, ring_radius: float = 2.0, grid_side: int = 5,
                 grid_spacing: float = 2.0, mode_std: float | None = None) -> GaussianMixture:
    """Build a named data set; ``mode_std`` None means the data set's published default."""
    if name == "ring8":
        return ring(ring_modes, ring_radius, 0.02 if mode_std is None else mode_std)
    if name == "grid25":
        return grid(grid_side, grid_spacing, 0.05 if mode_std is None else mode_std)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")

