"""HGAN's teacher for 2-D data: an autoregressive mixture-density network, exact in its likelihood.

p(x) = p(x₁) · p(x₂ | x₁), each factor a mixture of J one-dimensional Gaussians:

* p(x₁) = Σ_j π_j N(x₁; μ_j, σ_j²), its logits, means and log-stds free parameters;
* p(x₂ | x₁) = Σ_j π_j(x₁) N(x₂; μ_j(x₁), σ_j(x₁)²), the 3J numbers given by an MLP of x₁.

log p is exact (a sum of two log-sum-exps), differentiable in x (``--teacher-term likelihood``
back-propagates −log p_T(G_k(z)) through it), and sampling is two draws. The components' means
start spread out (from the teacher's seed): with equal starts every component would get the same
gradient and the mixture would never split.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sharedgan.models.mlp import mlp

LOG_STD_MIN = -9.0  # σ ≥ 1.2e-4: below the narrowest mode of the data sets here (0.02), far above float noise
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def mixture_log_prob(params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log Σ_j π_j N(x; μ_j, σ_j²) for params [n, 3J] = (logits, means, log-stds) and x [n]."""
    logits, means, log_stds = params.chunk(3, dim=-1)
    log_stds = log_stds.clamp(min=LOG_STD_MIN)
    z = (x.unsqueeze(-1) - means) * torch.exp(-log_stds)
    components = -0.5 * z * z - log_stds - HALF_LOG_2PI
    return torch.logsumexp(F.log_softmax(logits, dim=-1) + components, dim=-1)


def mixture_sample(params: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One draw from each row's mixture: a component by its weight, then its Gaussian."""
    logits, means, log_stds = params.chunk(3, dim=-1)
    pick = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator).squeeze(-1)
    rows = torch.arange(params.shape[0])
    noise = torch.randn(params.shape[0], generator=generator)
    return means[rows, pick] + torch.exp(log_stds.clamp(min=LOG_STD_MIN)[rows, pick]) * noise


class AutoregressiveMDN(nn.Module):
    def __init__(self, components: int = 16, hidden: int = 128):
        super().__init__()
        self.components = components
        means = torch.randn(components) * 2.0
        self.first = nn.Parameter(torch.cat([torch.zeros(components), means, torch.full((components,), -0.5)]))
        self.second = mlp(1, hidden, 3 * components)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) in nats for x [n, 2]."""
        first = self.first.expand(x.shape[0], -1)
        return mixture_log_prob(first, x[:, 0]) + mixture_log_prob(self.second(x[:, :1]), x[:, 1])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n samples [n, 2], every draw from ``generator``."""
        x1 = mixture_sample(self.first.expand(n, -1), generator)
        x2 = mixture_sample(self.second(x1.unsqueeze(-1)), generator)
        return torch.stack([x1, x2], dim=1)


def mdn_teacher(components: int, hidden: int, seed: int) -> AutoregressiveMDN:
    """The 2-D teacher, initialised from ``seed`` without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoregressiveMDN(components, hidden)
