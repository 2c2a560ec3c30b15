"""The layers behind the Improved-GAN, stochastic-ensembling and resize options, for the built-in models.

* :class:`MinibatchDiscrimination` (Improved GAN §3.2, ``--minibatch-features B``);
* :class:`VirtualBatchNorm` (Improved GAN §3.4, ``--virtual-batch-norm``), driven by
  :class:`ReferenceBatch`, which runs a fixed reference batch through the model with every batch;
* :func:`spectral_normalised` (Miyato et al. 2018, ``--spectral-norm``): every weight divided by
  its largest singular value, estimated by one power iteration per forward pass in training;
* :class:`StochasticLinear` and :class:`StochasticConvTranspose2d` (the stochastic-deconvolution
  paper, ``--generator sdeconv``): every sample takes its own filters from a bank, and
  :func:`route` picks them from the sample's own noise;
* :class:`UpsampleConv2d` (``--generator resize``): nearest-neighbour upsampling and a 3 × 3
  convolution, computed as the one transposed convolution that equals them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from sharedgan.models.spec import ModelSpec

REFERENCE_SIZE = 64  # the virtual-batch-norm reference batch (noise drawn once, kept in the model)


def in_float32(forward):
    """A statistics layer's forward in float32 even under ``--precision bf16``'s autocast: batch
    moments as E[x²] − E[x]² cancel in bfloat16 (virtual batch norm's variance fell to 0), and
    minibatch discrimination's near-duplicate distances are what bfloat16 rounds away. Without
    autocast it changes nothing."""
    def forward_in_float32(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return forward(self, x.float())
    forward_in_float32.__doc__ = forward.__doc__
    return forward_in_float32


class MinibatchDiscrimination(nn.Module):
    """f [N, A] → o [N, B]: M_i = f_i T ∈ R^{B×C}, c_b(i, j) = exp(−‖M_{i,b} − M_{j,b}‖₁),
    o_b(i) = Σ_j c_b(i, j) (j = i included, as the paper's sum), over the samples of i's group.

    Groups are consecutive blocks of ``group`` rows (the batch size m): D scores several slots, or
    several real batches, in one pass, and each batch must be compared with itself alone (the paper
    computes the features "separately for real and generated batches"). An input that is not a
    whole number of groups is one group (the shape probe)."""

    def __init__(self, in_features: int, kernels: int, kernel_dim: int, group: int):
        super().__init__()
        self.kernels, self.kernel_dim, self.group = kernels, kernel_dim, group
        self.T = nn.Parameter(torch.randn(in_features, kernels * kernel_dim) * 0.1)

    @in_float32
    def forward(self, f: torch.Tensor) -> torch.Tensor:
        n = f.shape[0]
        g = self.group if self.group and n % self.group == 0 else n
        m = (f @ self.T).view(n // g, g, self.kernels, self.kernel_dim)
        l1 = (m.unsqueeze(2) - m.unsqueeze(1)).abs().sum(-1)  # [groups, i, j, B]
        return torch.exp(-l1).sum(2).reshape(n, self.kernels)


class VirtualBatchNorm(nn.Module):
    """Batch norm whose statistics come from a reference batch fixed at the start, combined with
    each example itself (Improved GAN §3.4). The input's first ``reference_size`` rows are the
    reference batch (put there by :class:`ReferenceBatch`): they are normalised with their own
    statistics; every other row x with mean = (N·μ_ref + x)/(N + 1) and the same for the square.
    Statistics are per channel (dim 1), over the spatial positions as well for images."""

    def __init__(self, channels: int, reference_size: int = REFERENCE_SIZE, eps: float = 1e-5):
        super().__init__()
        self.reference_size, self.eps = reference_size, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    @in_float32
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.reference_size
        if x.shape[0] <= r:
            raise RuntimeError(f"virtual batch norm needs the {r} reference rows first, got {x.shape[0]} rows")
        dims = [0] + list(range(2, x.dim()))  # the batch and any spatial positions
        ref, rest = x[:r], x[r:]
        ref_mean, ref_sq = ref.mean(dims, keepdim=True), (ref * ref).mean(dims, keepdim=True)
        own = [d for d in dims if d != 0]
        own_mean = rest.mean(own, keepdim=True) if own else rest
        own_sq = (rest * rest).mean(own, keepdim=True) if own else rest * rest
        w = 1.0 / (r + 1)
        mean, sq = (1 - w) * ref_mean + w * own_mean, (1 - w) * ref_sq + w * own_sq
        shape = [1, -1] + [1] * (x.dim() - 2)
        out_ref = (ref - ref_mean) / torch.sqrt((ref_sq - ref_mean ** 2).clamp(min=0) + self.eps)
        out_rest = (rest - mean) / torch.sqrt((sq - mean ** 2).clamp(min=0) + self.eps)
        return torch.cat([out_ref, out_rest]) * self.weight.view(shape) + self.bias.view(shape)


class ReferenceBatch(nn.Module):
    """Wraps a generator body that uses :class:`VirtualBatchNorm`: prepends the reference noise
    (drawn once at construction from the model's own seed, saved with the model) to every batch and
    drops the reference rows from the output, so each sample depends on its noise alone."""

    def __init__(self, body: nn.Module, noise_dim: int, prior: str = "normal", size: int = REFERENCE_SIZE):
        super().__init__()
        self.body = body
        z = torch.rand(size, noise_dim) * 2 - 1 if prior == "uniform" else torch.randn(size, noise_dim)
        self.register_buffer("reference_noise", z)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        r = self.reference_noise.shape[0]
        return self.body(torch.cat([self.reference_noise.to(z.dtype), z]))[r:]


def route(z: torch.Tensor, layer: int, bank: int) -> torch.Tensor:
    """Per sample, which of ``bank`` filters layer ``layer`` uses: a hash of the bits of the
    sample's noise. The route is random because z is, and a function of z alone, so a generator
    stays a deterministic function of its noise (resume, the engine equivalence and evaluation
    noise all hold without a random stream of its own)."""
    bits = z.detach().float().contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    h = torch.full((z.shape[0],), 0x9E3779B9 + layer * 0x85EBCA6B, dtype=torch.int64, device=z.device)
    for column in bits.unbind(1):  # FNV-style mixing, kept within 32 bits
        h = ((h ^ column) * 0x01000193) & 0xFFFFFFFF
        h = h ^ (h >> 15)
    return h % bank


class _Bank(nn.Module):
    """A bank of ``bank`` weight-normalised filters, w_b = g_b · v_b / ‖v_b‖ (per output unit)."""

    def _init_bank(self, bank: int, shape: tuple[int, ...], norm_dims: tuple[int, ...]):
        self.bank, self.norm_dims = bank, norm_dims
        v = torch.empty(bank, *shape)
        for b in range(bank):
            nn.init.kaiming_uniform_(v[b], a=5 ** 0.5)
        self.v = nn.Parameter(v)
        self.g = nn.Parameter(self._norm(v))

    def _norm(self, v: torch.Tensor) -> torch.Tensor:
        return v.pow(2).sum(dim=self.norm_dims, keepdim=True).sqrt()

    def weights(self) -> torch.Tensor:
        return self.g * self.v / self._norm(self.v)


class StochasticLinear(_Bank):
    """y_i = W_{r_i} x_i + b_{r_i}, the filters r_i of sample i chosen by :func:`route`."""

    def __init__(self, n_in: int, n_out: int, bank: int):
        super().__init__()
        self._init_bank(bank, (n_out, n_in), (2,))
        self.b = nn.Parameter(torch.zeros(bank, n_out))

    def forward(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return torch.bmm(self.weights()[r], x.unsqueeze(2)).squeeze(2) + self.b[r]


class StochasticConvTranspose2d(_Bank):
    """A transposed convolution whose filters each sample takes from a bank (by :func:`route`):
    the input runs through every filter set and each sample keeps its own, a cost of ``bank``
    convolutions that keeps it one batched call."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, bank: int):
        super().__init__()
        self.stride, self.padding = stride, padding
        self._init_bank(bank, (c_in, c_out, kernel, kernel), (1, 3, 4))
        self.b = nn.Parameter(torch.zeros(bank, c_out))

    def forward(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        w = self.weights()
        outs = torch.stack([F.conv_transpose2d(x, w[b], self.b[b], self.stride, self.padding)
                            for b in range(self.bank)], 1)
        return outs[torch.arange(x.shape[0], device=x.device), r]


def _phases(w: torch.Tensor, dim: int) -> torch.Tensor:
    """A 3-tap filter along ``dim`` → the 4 taps of the stride-2 transposed convolution that equals
    nearest-neighbour ×2 upsampling followed by it. An even output row 2i sees upsampled rows 2i − 1,
    2i, 2i + 1, i.e. input rows i − 1, i, i (taps w₀, w₁ + w₂); an odd one i, i, i + 1 (w₀ + w₁,
    w₂). A transposed convolution (stride 2, padding 1) adds input row i into output row 2i − 1 + k
    with tap K[k]: output 2i takes row i − 1 with K[3] and row i with K[1], output 2i + 1 takes row i
    with K[2] and row i + 1 with K[0]. So K = (w₂, w₁ + w₂, w₀ + w₁, w₀)."""
    w0, w1, w2 = w.unbind(dim)
    return torch.stack([w2, w1 + w2, w0 + w1, w0], dim)


class UpsampleConv2d(nn.Conv2d):
    """Nearest-neighbour ×2 upsampling, then this 3 × 3 convolution (padding 1), computed as the one
    stride-2 4 × 4 transposed convolution that equals them (:func:`_phases`): 4 instead of 9
    multiply-adds per output value and input channel, and no upsampled copy. Its parameters are
    the 3 × 3 convolution's, so a checkpoint is the same either way; the two forms differ in float
    rounding only (the taps are sums of weights)."""

    def __init__(self, c_in: int, c_out: int, bias: bool):
        super().__init__(c_in, c_out, 3, 1, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = _phases(_phases(self.weight, 2), 3).transpose(0, 1)  # [c_in, c_out, 4, 4]
        return F.conv_transpose2d(x, kernel, self.bias, stride=2, padding=1)


def spectral_normalised(module: nn.Module) -> nn.Module:
    """``module`` with torch's spectral-norm parametrisation on every convolution and linear layer
    (W / σ(W), σ by power iteration, its vectors buffers saved with the model). Call it after the
    weights are initialised: the parametrisation keeps the initial W as its ``original``."""
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(layer)
    return module


def with_reference_batch(body: nn.Module, spec: ModelSpec) -> nn.Module:
    """A generator body as is, or wrapped to carry the virtual-batch-norm reference batch."""
    return ReferenceBatch(body, spec.noise_dim, spec.noise_prior) if spec.virtual_batch_norm else body

