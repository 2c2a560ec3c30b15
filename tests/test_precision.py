"""--precision bf16: the models' training forward passes under autocast, everything else float32."""
import pytest
import torch
from torch import nn

from sharedgan import TrainConfig
from sharedgan.errors import ConfigError
from sharedgan.roles.base import CPU, RoleState


class _Role(RoleState):
    def __init__(self, precision: str):
        self.config, self.device = TrainConfig(precision=precision).validate(), CPU


class _Probe(nn.Module):
    """A linear layer that records whether it ran under autocast, with a second output."""

    def __init__(self):
        super().__init__()
        self.lin, self.seen = nn.Linear(3, 2), []

    def forward(self, x):
        self.seen.append(torch.is_autocast_enabled("cpu"))
        y = self.lin(x)
        return y, y.sum(1)


def test_bf16_runs_the_model_under_autocast_and_returns_float32():
    net, x = _Probe(), torch.randn(4, 3, requires_grad=True)
    y, total = _Role("bf16").in_precision(net, x)
    assert net.seen == [True] and y.dtype == total.dtype == torch.float32
    exact = net.lin(x)
    assert not torch.equal(y, exact) and torch.allclose(y, exact, atol=0.05)  # the product was in bf16
    y.sum().backward()  # gradients reach the float32 input and parameters through the casts
    assert x.grad.dtype == torch.float32 and net.lin.weight.grad.dtype == torch.float32


def test_fp32_runs_the_model_as_it_is():
    net, x = _Probe(), torch.randn(4, 3)
    y, _ = _Role("fp32").in_precision(net, x)
    assert net.seen == [False] and torch.equal(y, net.lin(x))


def test_an_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match="--precision"):
        TrainConfig(precision="fp16").validate()


def test_the_statistics_layers_compute_in_float32_under_autocast():
    """Virtual batch norm's E[x²] − E[x]² cancels in bfloat16 (its variance fell to 0 and its
    output blew up); it and minibatch discrimination run in float32 whatever the autocast."""
    from sharedgan.models.layers import REFERENCE_SIZE, MinibatchDiscrimination, VirtualBatchNorm
    torch.manual_seed(0)
    vbn, x = VirtualBatchNorm(3), 8 + 0.3 * torch.randn(REFERENCE_SIZE + 5, 3)
    mbd, f = MinibatchDiscrimination(3, 4, 2, group=8), torch.randn(16, 3)
    for layer, inp in ((vbn, x), (mbd, f)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            inside = layer(inp)
        assert inside.dtype == torch.float32 and torch.equal(inside, layer(inp))
    assert 0.5 < float(vbn(x)[REFERENCE_SIZE:].detach().std()) < 1.5


def test_in_precision_casts_list_outputs_too():
    class Lists(nn.Module):
        def forward(self, x):
            return [x @ x.T, x.sum()]
    out = _Role("bf16").in_precision(Lists(), torch.randn(3, 3))
    assert isinstance(out, list) and all(o.dtype == torch.float32 for o in out)
