"""Built-in models and the resolution of user model factories.

A factory is any importable function ``factory(spec: ModelSpec) -> torch.nn.Module`` named as
``"package.module:function"``. Factories travel to spawned processes by name (a lambda or a local
function cannot be imported there), and each process builds its own model from its own seed.

Shapes the engines rely on:
* generator: noise [m, noise_dim] → samples [m, *sample_shape]
* discriminator: samples [m, *sample_shape] → logits [m] (or [m, 1])
* classifier: samples [m, *sample_shape] → logits [m, K] (head k: "x comes from G_-k")
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

class FactoryError(ValueError):
    """A model factory reference that cannot be used; the message says what to pass instead."""


@dataclass(frozen=True)
class ModelSpec:
    sample_shape: tuple[int, ...]  # (2,) for the 2-D mixtures; (C, H, W) for images
    noise_dim: int
    num_generators: int
    hidden: int = 128  # width of the MLPs' hidden layers
    width: int = 64  # channels of the convolutional models' first (D) or last (G) layer


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


def mlp_generator(spec: ModelSpec) -> nn.Module:
    size = math.prod(spec.sample_shape)
    return nn.Sequential(mlp(spec.noise_dim, spec.hidden, size), _Reshape(spec.sample_shape))


def mlp_discriminator(spec: ModelSpec) -> nn.Module:
    return nn.Sequential(nn.Flatten(), mlp(math.prod(spec.sample_shape), spec.hidden, 1), nn.Flatten(0))


def mlp_classifier(spec: ModelSpec) -> nn.Module:
    return nn.Sequential(nn.Flatten(), mlp(math.prod(spec.sample_shape), spec.hidden, spec.num_generators))


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
        "classifier": (batch, spec.num_generators),
    }[role]
    got = tuple(out.shape)
    if role == "discriminator" and got == (batch, 1):
        return
    if got != want:
        raise FactoryError(f"the {role} model returns shape {list(got)}, expected {list(want)}")
