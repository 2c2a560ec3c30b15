"""DCGAN models for 32 × 32 and 64 × 64 images (Radford et al.), as both papers use them.

Generator: z → 4 × 4 × (2^s · w) by a transposed convolution, then s stride-2 transposed
convolutions halving the channels and doubling the size, batch norm and ReLU between, tanh at the
end (s = 3 for 32 × 32, 4 for 64 × 64). Discriminator: the mirror image with stride-2 convolutions,
LeakyReLU(0.2), batch norm on every layer but the first, and a 4 × 4 convolution to one logit.
The classifier has the same trunk with K logits. Weights follow DCGAN's initialisation: N(0, 0.02)
for convolutions, N(1, 0.02) for batch-norm scales, zero biases. ``--width`` (w, 64 in DCGAN)
scales every layer, so a CPU smoke run can use w = 8.
"""
from __future__ import annotations

from torch import nn

from .models import FactoryError, ModelSpec


def _stages(spec: ModelSpec) -> int:
    if len(spec.sample_shape) != 3 or spec.sample_shape[1] != spec.sample_shape[2] or spec.sample_shape[1] not in (32, 64):
        raise FactoryError(f"the DCGAN models take 32 × 32 or 64 × 64 images [C, H, W], got {list(spec.sample_shape)}")
    return 3 if spec.sample_shape[1] == 32 else 4


def init_dcgan(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        s, w, channels = _stages(spec), spec.width, spec.sample_shape[0]
        top = w * 2 ** (s - 1)
        layers = [nn.ConvTranspose2d(spec.noise_dim, top, 4, 1, 0, bias=False), nn.BatchNorm2d(top), nn.ReLU(True)]
        for i in range(s - 1):
            c_in, c_out = top // 2 ** i, top // 2 ** (i + 1)
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(w, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan)

    def forward(self, z):
        return self.net(z.view(z.shape[0], -1, 1, 1))


def trunk(spec: ModelSpec) -> tuple[nn.Sequential, int]:
    """D's convolutional trunk: image → [m, 2^(s−1)·w, 4, 4]; returns it and its channel count."""
    s, w = _stages(spec), spec.width
    layers = [nn.Conv2d(spec.sample_shape[0], w, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    for i in range(s - 1):
        c_in, c_out = w * 2 ** i, w * 2 ** (i + 1)
        layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, True)]
    return nn.Sequential(*layers), w * 2 ** (s - 1)


class Critic(nn.Module):
    """The discriminator (outputs=1, logits [m]) or the classifier (outputs=K, logits [m, K])."""

    def __init__(self, spec: ModelSpec, outputs: int):
        super().__init__()
        self.trunk, channels = trunk(spec)
        self.head = nn.Conv2d(channels, outputs, 4, 1, 0)
        self.outputs = outputs
        self.apply(init_dcgan)

    def forward(self, x):
        logits = self.head(self.trunk(x)).flatten(1)
        return logits.flatten() if self.outputs == 1 else logits


def generator(spec: ModelSpec) -> nn.Module:
    return Generator(spec)


def discriminator(spec: ModelSpec) -> nn.Module:
    return Critic(spec, 1)


def classifier(spec: ModelSpec) -> nn.Module:
    return Critic(spec, spec.num_generators)
