"""What a model factory is given (:class:`ModelSpec`), and how a factory named as
``"package.module:function"`` is found, built and checked."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from sharedgan.errors import FactoryError


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
    spectral_norm: str = "off"  # off | discriminator | both (D and C): spectral normalisation of their layers
    discriminator_norm: str = "batch"  # batch | none: the image D's hidden layers without spectral norm

    def spectral(self, discriminator: bool) -> bool:
        """Are this critic's layers (D's if ``discriminator``, else C's) spectrally normalised?"""
        return self.spectral_norm == "both" or (discriminator and self.spectral_norm == "discriminator")

    def batch_norm(self, discriminator: bool) -> bool:
        """Does this image critic (D's if ``discriminator``, else C's) batch-normalise its hidden layers?"""
        return not self.spectral(discriminator) and not (discriminator and self.discriminator_norm == "none")

    @property
    def heads(self) -> int:
        return self.num_generators if self.classifier_outputs is None else self.classifier_outputs


def rename_legacy_keys(state_dict: dict, prefix: str, renames: dict[str, str]) -> None:
    """Checkpoints written before a model was restructured keep loading: rename each key that
    starts with ``prefix + old`` to ``prefix + new`` (called from ``_load_from_state_dict``, which
    torch runs on a parent before its children)."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        for old, new in renames.items():
            if key.startswith(prefix + old):
                state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)
                break


# Where the built-in factories lived before the package was laid out by concept (0.1): runs made
# then name them so in config.json and in their checkpoints' fingerprints, and must keep working.
LEGACY_MODULES = {"sharedgan.models": "sharedgan.models.mlp", "sharedgan.dcgan": "sharedgan.models.dcgan"}


def canonical_factory(reference):
    """A factory reference with a module that has moved named by its new place (else unchanged)."""
    if not isinstance(reference, str):
        return reference
    module, sep, attr = reference.partition(":")
    return f"{LEGACY_MODULES[module]}:{attr}" if sep and module in LEGACY_MODULES else reference


def factory_reference(factory: str | Callable) -> str:
    """Turn a factory (a reference string or an importable function) into ``module:function``."""
    if isinstance(factory, str):
        return canonical_factory(factory)
    qualname = getattr(factory, "__qualname__", "")
    module = getattr(factory, "__module__", None)
    if not callable(factory) or module is None or "<" in qualname:
        raise FactoryError(
            f"model factory {factory!r} cannot be sent to another process; define it at module level "
            "and pass it as 'package.module:function' (lambdas and local functions are not importable)")
    return f"{module}:{qualname}"


def resolve_factory(reference: str) -> Callable[[ModelSpec], nn.Module]:
    """Import ``package.module:function``; a clear :class:`FactoryError` if that fails."""
    module_name, sep, attr = canonical_factory(reference).partition(":")
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

