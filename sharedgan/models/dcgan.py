"""DCGAN models for 32 × 32 and 64 × 64 images (Radford et al.), as both papers use them.

Generator: z → 4 × 4 × (2^s · w) by a transposed convolution, then s stride-2 transposed
convolutions halving the channels and doubling the size, batch norm and ReLU between, tanh at the
end (s = 3 for 32 × 32, 4 for 64 × 64). Discriminator: the mirror image with stride-2 convolutions,
LeakyReLU(0.2), batch norm on every layer but the first, and a 4 × 4 convolution to one logit.
The classifier has the same trunk with K logits. Weights follow DCGAN's initialisation: N(0, 0.02)
for convolutions, N(1, 0.02) for batch-norm scales, zero biases. ``--width`` (w, 64 in DCGAN)
scales every layer, so a CPU smoke run can use w = 8.

Options a spec carries: ``--virtual-batch-norm`` (the generator's batch norm becomes virtual batch
norm), ``--generator resize`` (upsample and convolve instead of transposed convolutions),
``--generator sdeconv`` (the first deep layers pick their filters per sample from a bank,
weight norm and PReLU(0.2) instead of batch norm and ReLU, as the stochastic-deconvolution paper),
``--minibatch-features`` (minibatch discrimination on D's trunk), ``--spectral-norm`` (spectral
normalisation of every layer of D, or of D and C, which then have no batch norm: SNGAN's D).
D's trunk output is the f(x) of feature matching.
"""

from __future__ import annotations

from torch import nn

from sharedgan.errors import FactoryError
from sharedgan.models.layers import (
    MinibatchDiscrimination,
    StochasticConvTranspose2d,
    UpsampleConv2d,
    VirtualBatchNorm,
    route,
    spectral_normalised,
    with_reference_batch,
)
from sharedgan.models.spec import ModelSpec, rename_legacy_keys


def _stages(spec: ModelSpec) -> int:
    if (len(spec.sample_shape) != 3 or spec.sample_shape[1] != spec.sample_shape[2]
            or spec.sample_shape[1] not in (32, 64)):
        raise FactoryError(f"the DCGAN models take 32 × 32 or 64 × 64 images [C, H, W], got {list(spec.sample_shape)}")
    return 3 if spec.sample_shape[1] == 32 else 4


def init_dcgan(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, VirtualBatchNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """s + 1 transposed convolutions (see the module doc); ``stochastic``: the stochastic-
    deconvolution generator, its first ``spec.stochastic_layers`` layers drawing from a bank."""

    def __init__(self, spec: ModelSpec, stochastic: bool = False, resize: bool = False):
        """``resize``: every stride-2 transposed convolution becomes a nearest-neighbour ×2
        upsampling and a 3 × 3 convolution (Odena et al. 2016, "Deconvolution and checkerboard
        artifacts": in a stride-2 transposed convolution each output pixel's parity picks its own
        quarter of the 4 × 4 filter, so unless the quarters balance exactly a flat region comes out
        as a 2-pixel grid, high-frequency texture that upsampling and convolving cannot draw)."""
        super().__init__()
        s, w = _stages(spec), spec.width
        top = w * 2 ** (s - 1)
        chans = [spec.noise_dim] + [top // 2 ** i for i in range(s)] + [spec.sample_shape[0]]
        deep = min(spec.stochastic_layers, s) if stochastic else 0
        layers = []
        for i in range(s + 1):
            last = i == s
            stride, pad = (1, 0) if i == 0 else (2, 1)
            if i < deep:
                layers.append(StochasticConvTranspose2d(chans[i], chans[i + 1], 4, stride, pad, spec.bank))
            elif stochastic:
                layers.append(nn.utils.parametrizations.weight_norm(nn.ConvTranspose2d(chans[i], chans[i + 1],
                                                                                       4, stride, pad)))
            elif resize and i > 0:  # Identity: the place nn.Upsample held, so checkpoints keep their layer numbers
                layers += [nn.Identity(), UpsampleConv2d(chans[i], chans[i + 1], bias=last)]
            else:
                layers.append(nn.ConvTranspose2d(chans[i], chans[i + 1], 4, stride, pad, bias=last))
            if last:
                layers.append(nn.Tanh())
                continue
            if spec.virtual_batch_norm:
                layers.append(VirtualBatchNorm(chans[i + 1]))
            elif not stochastic:
                layers.append(nn.BatchNorm2d(chans[i + 1]))
            layers.append(nn.PReLU(chans[i + 1], init=0.2) if stochastic else nn.ReLU(True))
        if stochastic:
            self.net = nn.ModuleList(layers)
        else:  # the first layer (with its norm and activation), and the body (--share-generator-body)
            self.first, self.body = nn.Sequential(*layers[:3]), nn.Sequential(*layers[3:])
            self.apply(init_dcgan)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if not hasattr(self, "net"):  # runs written before 2026-11-23 kept these layers in one list
            renames = {f"net.{i}.": f"first.{i}." for i in range(3)}
            renames.update({f"net.{i}.": f"body.{i - 3}." for i in range(3, len(self.body) + 3)})
            rename_legacy_keys(state_dict, prefix, renames)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, z):
        h, depth = z.view(z.shape[0], -1, 1, 1), 0
        if not hasattr(self, "net"):
            return self.body(self.first(h))
        for layer in self.net:
            if isinstance(layer, StochasticConvTranspose2d):
                h, depth = layer(h, route(z, depth, layer.bank)), depth + 1
            else:
                h = layer(h)
        return h


def trunk(spec: ModelSpec, batch_norm: bool = True) -> tuple[nn.Sequential, int]:
    """D's convolutional trunk: image → [m, 2^(s−1)·w, 4, 4]; returns it and its channel count."""
    s, w = _stages(spec), spec.width
    layers = [nn.Conv2d(spec.sample_shape[0], w, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    for i in range(s - 1):
        c_in, c_out = w * 2 ** i, w * 2 ** (i + 1)
        norm = [nn.BatchNorm2d(c_out)] if batch_norm else []
        layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not batch_norm), *norm, nn.LeakyReLU(0.2, True)]
    return nn.Sequential(*layers), w * 2 ** (s - 1)


class Critic(nn.Module):
    """The discriminator (outputs=1, logits [m]) or the classifier (outputs=H, logits [m, H]).
    f(x), the trunk's output flattened, is what feature matching compares."""

    def __init__(self, spec: ModelSpec, outputs: int, minibatch: bool = False):
        """``minibatch``: this is D (logits [m]; minibatch discrimination if the spec asks);
        otherwise C with ``outputs`` logits [m, H]."""
        super().__init__()
        spectral = spec.spectral(discriminator=minibatch)
        self.trunk, channels = trunk(spec, batch_norm=spec.batch_norm(discriminator=minibatch))
        self.minibatch = (MinibatchDiscrimination(channels * 16, spec.minibatch_features, spec.minibatch_kernel_dim,
                                                  spec.batch_size) if minibatch and spec.minibatch_features else None)
        self.head = nn.Conv2d(channels, outputs, 4, 1, 0)
        self.extra = nn.Linear(spec.minibatch_features, outputs, bias=False) if self.minibatch is not None else None
        self.is_discriminator = minibatch
        self.apply(init_dcgan)
        if spectral:
            spectral_normalised(self)

    def features(self, x):
        return self.trunk(x).flatten(1)

    def forward_features(self, x):
        t = self.trunk(x)
        f = t.flatten(1)
        logits = self.head(t).flatten(1)
        if self.minibatch is not None:  # o(x) joins f(x) in the last layer: a linear term of its own
            logits = logits + self.extra(self.minibatch(f))
        return (logits.flatten() if self.is_discriminator else logits), f

    def forward(self, x):
        return self.forward_features(x)[0]


def generator(spec: ModelSpec) -> nn.Module:
    return with_reference_batch(Generator(spec), spec)


def resize_generator(spec: ModelSpec) -> nn.Module:
    return with_reference_batch(Generator(spec, resize=True), spec)


def sdeconv_generator(spec: ModelSpec) -> nn.Module:
    return with_reference_batch(Generator(spec, stochastic=True), spec)


def discriminator(spec: ModelSpec) -> nn.Module:
    return Critic(spec, 1, minibatch=True)


def classifier(spec: ModelSpec) -> nn.Module:
    return Critic(spec, spec.heads)

