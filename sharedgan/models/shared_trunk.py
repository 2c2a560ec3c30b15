"""``--shared-trunk``: the classifier as a second head on D's trunk (MGAN §3)."""

from __future__ import annotations

import torch
from torch import nn

from sharedgan.errors import FactoryError
from sharedgan.models.spec import ModelSpec


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
    if (not isinstance(getattr(discriminator, "trunk", None), nn.Module)
            or not callable(getattr(discriminator, "features", None))):
        raise FactoryError("--shared-trunk needs a discriminator with a .trunk module and .features(x) "
                           "(the built-in models have them)")
    was_training = discriminator.training
    discriminator.eval()  # so the probe never touches D's batch-norm statistics
    with torch.no_grad():
        probe = torch.zeros(2, *spec.sample_shape, device=next(discriminator.parameters()).device)
        width = discriminator.features(probe).flatten(1).shape[1]
    discriminator.train(was_training)
    return SharedTrunkHead(discriminator, width, spec.heads)

