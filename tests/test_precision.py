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


# --slot-precision bf16: the batches and the gradients written back travel in bfloat16

EXCHANGED = ("sample", "d_grad", "c_grad", "t_grad")


def test_bf16_slots_halve_the_batch_and_gradient_regions_only():
    from sharedgan.runtime.buffer import fields_of
    from sharedgan.runtime.transport import traffic
    full = fields_of(TrainConfig(k=3, teacher_weight=1.0).validate(), (2,))
    half = fields_of(TrainConfig(k=3, teacher_weight=1.0, slot_precision="bf16").validate(), (2,))
    for name, field in full.items():
        expect = torch.bfloat16 if name in EXCHANGED else field.dtype
        assert half[name].dtype == expect and half[name].shape == field.shape, name
        assert half[name].nbytes == (field.nbytes // 2 if name in EXCHANGED else field.nbytes), name
    # the distributed transport's bytes per round fall by half of every batch and gradient it moves
    m, k = 128, 3
    saved = traffic(full, k)[0] - traffic(half, k)[0]
    # per slot: the batch to D and to C, D's and C's gradient back; m × 2 values, 2 bytes saved each
    assert saved == k * (2 + 2) * m * 2 * 2
    # with the teacher, the batch to T and T's gradient back too
    assert traffic(full, k, teacher=True)[0] - traffic(half, k, teacher=True)[0] == k * (3 + 3) * m * 2 * 2


def test_bf16_slots_round_the_batch_and_widen_it_for_every_reader():
    from sharedgan.roles.build import dataset_of, model_spec
    from sharedgan.roles.classifier import ClassifierRole
    from sharedgan.roles.discriminator import DiscriminatorRole
    from sharedgan.roles.generator import GeneratorRole
    from sharedgan.runtime.buffer import SlotBuffer, fields_of
    config = TrainConfig(k=2, batch_size=8, hidden=8, slot_precision="bf16").validate()
    spec, data = model_spec(config), dataset_of(config)
    buf = SlotBuffer.allocate(fields_of(config, spec.sample_shape), config.k, shared=False)
    gens = [GeneratorRole(config, spec, k) for k in range(2)]
    for g in gens:
        g.write_sample(buf, 0)
    exact = gens[0]._sample.detach()
    assert buf.sample.dtype == torch.bfloat16 and torch.equal(buf.sample[0].float(), exact.bfloat16().float())
    assert not torch.equal(buf.sample[0].float(), exact)  # rounded: the readers see the bf16 batch
    d, c = DiscriminatorRole(config, spec, data), ClassifierRole(config, spec)
    for k in range(2):
        d.validate(buf, k, 0)
        d.update(k, 0)
        c.serve_slot(buf, k, 0, c.take_round(buf, 0))
    assert buf.d_grad.dtype == buf.c_grad.dtype == torch.bfloat16 and buf.d_grad.abs().sum() > 0
    before = [p.detach().clone() for p in gens[0].net.parameters()]
    loss = gens[0].update(buf, 0)[0]
    moved = any(not torch.equal(a, p) for a, p in zip(before, gens[0].net.parameters()))
    assert torch.isfinite(torch.tensor(loss)) and moved
