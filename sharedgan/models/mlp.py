"""Built-in models and the resolution of user model factories.

A factory is any importable function ``factory(spec: ModelSpec) -> torch.nn.Module`` named as
``"package.module:function"``. Factories travel to spawned processes by name (a lambda or a local
function cannot be imported there), and each process builds its own model from its own seed.

Shapes the engines rely on:
* generator: noise [m, noise_dim] → samples [m, *sample_shape]
* discriminator: samples [m, *sample_shape] → logits [m] (or [m, 1])
* classifier: samples [m, *sample_shape] → logits [m, H], H = ``spec.classifier_outputs`` (K, or one
  per pair of generators for ``--classifier pairwise``)
* a discriminator used with ``--feature-matching`` also has ``forward_features(x) → (logits, f(x))``,
  f an intermediate layer [m, A].

The built-in models honour the options a spec carries (minibatch discrimination, virtual batch
norm, stochastic filter banks); a factory of your own may read them or not.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sharedgan.models.layers import (
    MinibatchDiscrimination,
    StochasticLinear,
    VirtualBatchNorm,
    route,
    spectral_normalised,
    with_reference_batch,
)
from sharedgan.models.spec import ModelSpec, rename_legacy_keys


def mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    """Three fully connected layers with LeakyReLU(0.2), as PGAN §4.1."""
    return nn.Sequential(
        nn.Linear(n_in, hidden), nn.LeakyReLU(0.2),
        nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
        nn.Linear(hidden, n_out),
    )


class _Reshape(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.view(x.shape[0], *self.shape)


class SplitGenerator(nn.Module):
    """A generator as its first layer and the rest, its body: ``--share-generator-body`` (MGAN)
    gives every generator its own first layer and one body shared by all."""

    def __init__(self, first: nn.Module, body: nn.Module):
        super().__init__()
        self.first, self.body = first, body

    def forward(self, z):
        return self.body(self.first(z))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # runs written before 2026-11-23 saved the MLP generator as Sequential(mlp, reshape)
        rename_legacy_keys(state_dict, prefix, {"0.0.": "first.0.", "0.2.": "body.0.", "0.4.": "body.2."})
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def mlp_generator(spec: ModelSpec) -> nn.Module:
    """PGAN §4.1's MLP generator; with virtual batch norm after each hidden layer if asked."""
    size = math.prod(spec.sample_shape)
    if not spec.virtual_batch_norm:
        h = spec.hidden
        return SplitGenerator(nn.Sequential(nn.Linear(spec.noise_dim, h), nn.LeakyReLU(0.2)),
                              nn.Sequential(nn.Linear(h, h), nn.LeakyReLU(0.2), nn.Linear(h, size),
                                            _Reshape(spec.sample_shape)))
    h = spec.hidden
    body = nn.Sequential(nn.Linear(spec.noise_dim, h), VirtualBatchNorm(h), nn.LeakyReLU(0.2),
                         nn.Linear(h, h), VirtualBatchNorm(h), nn.LeakyReLU(0.2),
                         nn.Linear(h, size), _Reshape(spec.sample_shape))
    return with_reference_batch(body, spec)


class StochasticMLP(nn.Module):
    """``--generator sdeconv`` for 2-D data: the stochastic-ensembling idea with linear layers. The
    first ``stochastic_layers`` (1–3) layers, the deep ones nearest z, take each sample's weights
    from a bank of ``bank``; the rest are plain; every layer weight-normalised, PReLU(0.2) between,
    as the stochastic-deconvolution paper (and virtual batch norm before each PReLU if asked)."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        h, deep = spec.hidden, max(1, min(spec.stochastic_layers, 3))
        sizes = [spec.noise_dim, h, h, math.prod(spec.sample_shape)]
        self.shape = spec.sample_shape
        self.layers = nn.ModuleList(
            StochasticLinear(sizes[i], sizes[i + 1], spec.bank) if i < deep
            else nn.utils.parametrizations.weight_norm(nn.Linear(sizes[i], sizes[i + 1])) for i in range(3))
        self.norms = nn.ModuleList(VirtualBatchNorm(h) for _ in range(2)) if spec.virtual_batch_norm else None
        self.acts = nn.ModuleList(nn.PReLU(h, init=0.2) for _ in range(2))

    def forward(self, z):
        h = z
        for i, layer in enumerate(self.layers):
            h = layer(h, route(z, i, layer.bank)) if isinstance(layer, StochasticLinear) else layer(h)
            if i < 2:
                h = self.acts[i](self.norms[i](h) if self.norms is not None else h)
        return h.view(h.shape[0], *self.shape)


def sdeconv_mlp_generator(spec: ModelSpec) -> nn.Module:
    return with_reference_batch(StochasticMLP(spec), spec)


class MLPCritic(nn.Module):
    """PGAN §4.1's MLP for D (1 logit) or C (H logits): two hidden layers, whose output f(x) is
    what feature matching compares, then minibatch discrimination on f if asked, then the head."""

    def __init__(self, spec: ModelSpec, outputs: int, minibatch: bool):
        """``minibatch``: this is D (one logit per sample, returned as [m]; minibatch
        discrimination if the spec asks); otherwise C with ``outputs`` logits [m, H]."""
        super().__init__()
        n_in, h = math.prod(spec.sample_shape), spec.hidden
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(n_in, h), nn.LeakyReLU(0.2),
                                   nn.Linear(h, h), nn.LeakyReLU(0.2))
        self.minibatch = (MinibatchDiscrimination(h, spec.minibatch_features, spec.minibatch_kernel_dim,
                                                  spec.batch_size)
                          if minibatch and spec.minibatch_features else None)
        self.head = nn.Linear(h + (spec.minibatch_features if self.minibatch else 0), outputs)
        self.is_discriminator = minibatch
        if spec.spectral(discriminator=minibatch):
            spectral_normalised(self)

    def features(self, x):
        return self.trunk(x)

    def forward_features(self, x):
        f = self.trunk(x)
        logits = self.head(torch.cat([f, self.minibatch(f)], 1) if self.minibatch is not None else f)
        return (logits.flatten() if self.is_discriminator else logits), f

    def forward(self, x):
        return self.forward_features(x)[0]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # runs written before 2026-11-23 saved the MLP critics as Sequential(flatten, mlp, flatten)
        rename_legacy_keys(state_dict, prefix, {"1.0.": "trunk.1.", "1.2.": "trunk.3.", "1.4.": "head."})
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def mlp_discriminator(spec: ModelSpec) -> nn.Module:
    return MLPCritic(spec, 1, minibatch=True)


def mlp_classifier(spec: ModelSpec) -> nn.Module:
    return MLPCritic(spec, spec.heads, minibatch=False)

