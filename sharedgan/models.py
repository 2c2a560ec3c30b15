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

import importlib
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .layers import MinibatchDiscrimination, ReferenceBatch, StochasticLinear, VirtualBatchNorm, route

class FactoryError(ValueError):
    """A model factory reference that cannot be used; the message says what to pass instead."""


@dataclass(frozen=True)
class ModelSpec:
    sample_shape: tuple[int, ...]  # (2,) for the 2-D mixtures; (C, H, W) for images
    noise_dim: int
    num_generators: int
    hidden: int = 128  # width of the MLPs' hidden layers
    width: int = 64  # channels of the convolutional models' first (D) or last (G) layer
    classifier_outputs: int | None = None  # H, the classifier's logits per sample; None: num_generators
    batch_size: int = 0  # m; minibatch discrimination compares the samples of each batch of m
    minibatch_features: int = 0  # B of minibatch discrimination in D (0: off)
    minibatch_kernel_dim: int = 5  # C of minibatch discrimination
    virtual_batch_norm: bool = False  # the generator normalises with a fixed reference batch
    noise_prior: str = "normal"  # the prior the reference noise is drawn from
    bank: int = 8  # the stochastic generator's filters per bank
    stochastic_layers: int = 2  # the stochastic generator's deep layers that pick from a bank

    @property
    def heads(self) -> int:
        return self.num_generators if self.classifier_outputs is None else self.classifier_outputs


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


def with_reference_batch(body: nn.Module, spec: ModelSpec) -> nn.Module:
    """A generator body as is, or wrapped to carry the virtual-batch-norm reference batch."""
    return ReferenceBatch(body, spec.noise_dim, spec.noise_prior) if spec.virtual_batch_norm else body


def rename_legacy_keys(state_dict: dict, prefix: str, renames: dict[str, str]) -> None:
    """Checkpoints written before a model was restructured keep loading: rename each key that
    starts with ``prefix + old`` to ``prefix + new`` (called from ``_load_from_state_dict``, which
    torch runs on a parent before its children)."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        for old, new in renames.items():
            if key.startswith(prefix + old):
                state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)
                break


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
                              nn.Sequential(nn.Linear(h, h), nn.LeakyReLU(0.2), nn.Linear(h, size), _Reshape(spec.sample_shape)))
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
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(n_in, h), nn.LeakyReLU(0.2), nn.Linear(h, h), nn.LeakyReLU(0.2))
        self.minibatch = (MinibatchDiscrimination(h, spec.minibatch_features, spec.minibatch_kernel_dim, spec.batch_size)
                          if minibatch and spec.minibatch_features else None)
        self.head = nn.Linear(h + (spec.minibatch_features if self.minibatch else 0), outputs)
        self.is_discriminator = minibatch

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


class SharedTrunkHead(nn.Module):
    """``--shared-trunk`` (MGAN §3): the classifier as a second head on D's trunk. Only the head is
    this module's own (and in its checkpoint); the trunk stays D's, and is held outside the module
    tree so that it is saved once, with D."""

    def __init__(self, discriminator: nn.Module, features: int, outputs: int):
        super().__init__()
        self._discriminator = (discriminator,)  # a tuple: not registered as a submodule
        self.head = nn.Linear(features, outputs)

    def forward(self, x):
        return self.head(self._discriminator[0].features(x).flatten(1))

    def trunk_parameters(self) -> list[torch.nn.Parameter]:
        return list(self._discriminator[0].trunk.parameters())


def shared_trunk_head(discriminator: nn.Module, spec: ModelSpec) -> SharedTrunkHead:
    """C's head on ``discriminator``'s trunk; the discriminator needs ``trunk`` and ``features(x)``."""
    if not isinstance(getattr(discriminator, "trunk", None), nn.Module) or not callable(getattr(discriminator, "features", None)):
        raise FactoryError("--shared-trunk needs a discriminator with a .trunk module and .features(x) "
                           "(the built-in models have them)")
    was_training = discriminator.training
    discriminator.eval()  # so the probe never touches D's batch-norm statistics
    with torch.no_grad():
        probe = torch.zeros(2, *spec.sample_shape, device=next(discriminator.parameters()).device)
        width = discriminator.features(probe).flatten(1).shape[1]
    discriminator.train(was_training)
    return SharedTrunkHead(discriminator, width, spec.heads)


def mlp_discriminator(spec: ModelSpec) -> nn.Module:
    return MLPCritic(spec, 1, minibatch=True)


def mlp_classifier(spec: ModelSpec) -> nn.Module:
    return MLPCritic(spec, spec.heads, minibatch=False)


def factory_reference(factory: str | Callable) -> str:
    """Turn a factory (a reference string or an importable function) into ``module:function``."""
    if isinstance(factory, str):
        return factory
    qualname = getattr(factory, "__qualname__", "")
    module = getattr(factory, "__module__", None)
    if not callable(factory) or module is None or "<" in qualname:
        raise FactoryError(
            f"model factory {factory!r} cannot be sent to another process; define it at module level "
            "and pass it as 'package.module:function' (lambdas and local functions are not importable)")
    return f"{module}:{qualname}"


def resolve_factory(reference: str) -> Callable[[ModelSpec], nn.Module]:
    """Import ``package.module:function``; a clear :class:`FactoryError` if that fails."""
    module_name, sep, attr = reference.partition(":")
    if not sep or not module_name or not attr:
        raise FactoryError(f"model factory {reference!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FactoryError(f"cannot import module {module_name!r} for model factory {reference!r}: {exc}; "
                           "is it installed or on PYTHONPATH?") from None
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise FactoryError(f"module {module_name!r} has no {attr!r} (model factory {reference!r})")
    if not callable(obj):
        raise FactoryError(f"model factory {reference!r} is not callable")
    return obj


def build_model(reference: str, spec: ModelSpec, seed: int) -> nn.Module:
    """Build a model with its parameters initialised from ``seed``; the caller's RNG is untouched."""
    factory = resolve_factory(reference)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = factory(spec)
    if not isinstance(model, nn.Module):
        raise FactoryError(f"model factory {reference!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def check_output(role: str, out: torch.Tensor, batch: int, spec: ModelSpec) -> None:
    """Raise :class:`FactoryError` if a model's output does not have the shape its role needs."""
    want = {
        "generator": (batch, *spec.sample_shape),
        "discriminator": (batch,),
        "classifier": (batch, spec.heads),
    }[role]
    got = tuple(out.shape)
    if role == "discriminator" and got == (batch, 1):
        return
    if got != want:
        raise FactoryError(f"the {role} model returns shape {list(got)}, expected {list(want)}")
