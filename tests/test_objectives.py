"""MGAN's classifier variants, feature matching, minibatch discrimination, virtual batch norm and the
stochastic generator, each against constants worked out by hand (not by the code under test)."""
import copy
import math

import pytest
import torch

from sharedgan import TrainConfig
from sharedgan.math import losses
from sharedgan.models.layers import MinibatchDiscrimination, StochasticLinear, VirtualBatchNorm, route
from sharedgan.models.mlp import StochasticMLP, mlp_classifier
from sharedgan.models.spec import ModelSpec
from sharedgan.roles.build import make_model, model_spec
from sharedgan.roles.classifier import ClassifierRole
from sharedgan.runtime.buffer import SlotBuffer, slot_fields

LN2 = 0.6931471805599453            # softplus(0)
SP_1 = 1.3132616875182228           # softplus(1)
SP_M1 = 0.31326168751822286         # softplus(-1)
SP_M5 = 0.006715348489117967        # softplus(-5)
SIG_1 = 0.7310585786300049          # σ(1)


def test_softmax_term_is_minus_log_own_probability():
    # c = [0, ln 2, 0]: softmax = [1/4, 2/4, 1/4]; −log of generator 1's probability is ln 2, of 0's ln 4
    c = torch.tensor([[0.0, math.log(2.0), 0.0]])
    assert losses.classifier_term("softmax", c, 1, 3).item() == pytest.approx(LN2, abs=1e-6)
    assert losses.classifier_term("softmax", c, 0, 3).item() == pytest.approx(2 * LN2, abs=1e-6)


def test_one_vs_all_has_the_cross_terms_ovr_lacks():
    c = torch.tensor([[0.0, 1.0, -1.0]], requires_grad=True)
    # −log C_0 − ½(log(1 − C_1) + log(1 − C_2)), C_j = σ(c_j): softplus(0) + ½(softplus(1) + softplus(−1))
    ova = losses.classifier_term("one-vs-all", c, 0, 3)
    assert ova.item() == pytest.approx(LN2 + (SP_1 + SP_M1) / 2, abs=1e-6)
    assert ova.item() == pytest.approx(1.5064088, abs=1e-6)
    (g_ova,) = torch.autograd.grad(ova.sum(), c)
    assert g_ova[0].tolist() == pytest.approx([-0.5, SIG_1 / 2, (1 - SIG_1) / 2], abs=1e-6)
    # ovr reads head 0 alone, with the opposite event: softplus(c_0), gradient σ(c_0) on head 0 only
    ovr = losses.classifier_term("ovr", c, 0, 3)
    (g_ovr,) = torch.autograd.grad(ovr.sum(), c)
    assert ovr.item() == pytest.approx(LN2, abs=1e-6)
    assert g_ovr[0].tolist() == pytest.approx([0.5, 0.0, 0.0], abs=1e-7)


def test_pair_columns_follow_triu_order():
    k = 5
    rows, cols = torch.triu_indices(k, k, offset=1)
    assert [losses.pair_index(int(i), int(j), k) for i, j in zip(rows, cols)] == list(range(10))
    assert losses.classifier_outputs("pairwise", 5) == 10 and losses.classifier_outputs("softmax", 5) == 5
    with pytest.raises(ValueError):
        losses.pair_index(2, 1, k)


def test_pairwise_term_sums_the_generators_pairs():
    # K = 3, columns (0,1), (0,2), (1,2). Generator 1 is second in (0,1) and first in (1,2):
    # −log(1 − σ(c01)) − log σ(c12) = softplus(1) + softplus(1); column (0,2) plays no part.
    c = torch.tensor([[1.0, 5.0, -1.0]], requires_grad=True)
    t1 = losses.classifier_term("pairwise", c, 1, 3)
    assert t1.item() == pytest.approx(2 * SP_1, abs=1e-6)
    (grad,) = torch.autograd.grad(t1.sum(), c)
    assert grad[0].tolist() == pytest.approx([SIG_1, 0.0, -SIG_1], abs=1e-6)
    # generator 0 is first in (0,1) and (0,2): softplus(−1) + softplus(−5)
    assert losses.classifier_term("pairwise", c, 0, 3).item() == pytest.approx(SP_M1 + SP_M5, abs=1e-6)


def test_pairwise_step_trains_every_pair_once():
    k, m = 4, 3
    logits = torch.randn(k, m, 6, generator=torch.Generator().manual_seed(0), requires_grad=True)
    terms = losses.classifier_step_terms("pairwise", logits, list(range(k)), torch.ones(k, dtype=torch.bool))
    assert len(terms) == 6
    (grad,) = torch.autograd.grad(torch.stack(terms).sum(), logits)
    for i in range(k):
        for j in range(i + 1, k):
            col = losses.pair_index(i, j, k)
            assert bool((grad[i, :, col] != 0).all()) and bool((grad[j, :, col] != 0).all()), (i, j)
            others = [s for s in range(k) if s not in (i, j)]
            assert bool((grad[others, :, col] == 0).all())  # a pair sees only its two generators' batches
    # a step on slot 2 alone trains the three pairs that hold generator 2: (0,2), (1,2), (2,3)
    assert len(losses.classifier_step_terms("pairwise", logits, [2], torch.ones(k, dtype=torch.bool))) == 3
    # the pair term itself: −log σ(c) on G_i's batch, −log(1 − σ(c)) on G_j's
    c = torch.zeros(2, 1, 1)
    (only,) = losses.classifier_step_terms("pairwise", c, [0], torch.ones(2, dtype=torch.bool))
    assert only.item() == pytest.approx(2 * LN2, abs=1e-6)


def test_softmax_and_one_vs_all_steps_by_hand():
    seen = torch.ones(2, dtype=torch.bool)
    logits = torch.zeros(2, 1, 2)
    # softmax: the cross-entropy of each slot's batch with its own label, averaged (π_k = 1/K);
    # logits 0 → ln 2 each. Batch 1 with c = [0, ln 3] → −log(1/4) and −log(3/4) for the two labels
    assert [t.item() for t in losses.classifier_step_terms("softmax", logits, [0], seen)] == pytest.approx([LN2])
    tilted = torch.tensor([[[0.0, 0.0]], [[0.0, math.log(3.0)]]])
    (mean_ce,) = losses.classifier_step_terms("softmax", tilted, [0], seen)
    assert mean_ce.item() == pytest.approx((LN2 + math.log(4 / 3)) / 2, abs=1e-6)
    # one-vs-all head 0: −log σ(c_0) on G_0, −log(1 − σ(c_0)) on G_1; with c_0 = 1 on both
    logits[:, :, 0] = 1.0
    (head0,) = losses.classifier_step_terms("one-vs-all", logits, [0], seen)
    assert head0.item() == pytest.approx(SP_M1 + SP_1, abs=1e-6)
    (ovr0,) = losses.classifier_step_terms("ovr", logits, [0], seen)  # the other way round for ovr: same here
    assert ovr0.item() == pytest.approx(SP_1 + SP_M1, abs=1e-6)
    logits[1, :, 0] = -1.0  # now G_1's c_0 = −1: ova −log(1 − σ(−1)) = softplus(−1); ovr −log σ(−1) = softplus(1)
    (head0,) = losses.classifier_step_terms("one-vs-all", logits, [0], seen)
    (ovr0,) = losses.classifier_step_terms("ovr", logits, [0], seen)
    assert (head0.item() == pytest.approx(SP_M1 + SP_M1, abs=1e-6)
            and ovr0.item() == pytest.approx(SP_1 + SP_1, abs=1e-6))
    assert losses.classifier_step_terms("softmax", logits, [0],
                                        torch.tensor([True, False])) == []  # nothing to contrast


def _classifier_errors(kind: str) -> torch.Tensor:
    config = TrainConfig(k=3, classifier=kind, batch_size=8, eval_samples=10).validate()
    spec = model_spec(config)
    role = ClassifierRole(config, spec)
    torch.manual_seed(0)
    role.net = mlp_classifier(ModelSpec((2,), 2, 3, 16))  # the same network for every variant
    role.opt = torch.optim.SGD(role.net.parameters(), lr=0.0)  # no update: compare the errors alone
    buf = SlotBuffer.allocate(slot_fields(8, (2,), 10), 3, shared=False)
    buf.sample.copy_(torch.randn(3, 8, 2, generator=torch.Generator().manual_seed(1)))
    buf.sample_round.fill_(0)
    role.serve_slots(buf, [(0, 0)])
    return buf.c_grad[0].clone()


def test_one_vs_all_and_ovr_write_different_errors_for_the_same_input():
    ovr, ova = _classifier_errors("ovr"), _classifier_errors("one-vs-all")
    assert torch.isfinite(ova).all() and ova.abs().sum() > 0
    assert (ovr - ova).abs().max() > 1e-4


def test_feature_matching_by_hand():
    real_mean = torch.tensor([1.0, 2.0])
    fake = torch.tensor([[0.0, 0.0], [2.0, 2.0]], requires_grad=True)  # mean [1, 1]
    value = losses.feature_matching(real_mean, fake)
    assert value.item() == pytest.approx(1.0)  # ‖[0, 1]‖²
    (grad,) = torch.autograd.grad(value, fake)
    assert grad.flatten().tolist() == pytest.approx([0.0, -1.0, 0.0, -1.0])  # −2(real − mean)/m, each row


def test_minibatch_discrimination_by_hand():
    layer = MinibatchDiscrimination(1, kernels=2, kernel_dim=1, group=2)
    with torch.no_grad():
        layer.T.copy_(torch.tensor([[1.0, 2.0]]))
    f = torch.tensor([[0.0], [1.0], [0.0], [7.0]])
    out = layer(f)
    # M_0 = [0, 0], M_1 = [1, 2]: o = [1 + e^−1, 1 + e^−2] for both (j = i adds exp(0) = 1)
    expected = [1 + math.exp(-1), 1 + math.exp(-2)]
    assert out[0].tolist() == pytest.approx(expected) and out[1].tolist() == pytest.approx(expected)
    # the second group (rows 2, 3) is compared within itself only: M = [0, 0] and [7, 14]
    assert out[2].tolist() == pytest.approx([1 + math.exp(-7), 1 + math.exp(-14)])


def test_virtual_batch_norm_by_hand():
    vbn = VirtualBatchNorm(1, reference_size=2, eps=0.0)
    out = vbn(torch.tensor([[0.0], [2.0], [4.0], [1.0]]))
    # reference [0, 2]: mean 1, variance 1 → −1, 1. Example 4: mean (2·1 + 4)/3 = 2,
    # E[x²] = (2·2 + 16)/3 = 20/3, variance 8/3 → (4 − 2)/√(8/3). Example 1: mean 1, E[x²] 5/3.
    assert out[:2, 0].tolist() == pytest.approx([-1.0, 1.0])
    assert out[2, 0].item() == pytest.approx(2 / math.sqrt(8 / 3))
    assert out[3, 0].item() == pytest.approx(0.0)
    # each example is normalised with the reference and itself alone: other examples change nothing
    again = vbn(torch.tensor([[0.0], [2.0], [4.0], [-30.0]]))
    assert again[2, 0].item() == pytest.approx(out[2, 0].item())


def test_the_reference_batch_is_fixed_and_saved_with_the_generator():
    config = TrainConfig(k=2, virtual_batch_norm=True).validate()
    spec = model_spec(config)
    a, b = make_model(config, "generator", spec, 0), make_model(config, "generator", spec, 0)
    assert torch.equal(a.reference_noise, b.reference_noise) and "reference_noise" in a.state_dict()
    z = torch.randn(5, 2)
    assert torch.allclose(a(z)[:2], a(z[:2]))  # a sample does not depend on the rest of its batch


def test_stochastic_samples_of_one_batch_take_different_routes():
    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    r = route(z, 0, 8)
    assert len(set(r.tolist())) > 1 and int(r.min()) >= 0 and int(r.max()) < 8
    assert torch.equal(route(z, 0, 8), r) and not torch.equal(route(z, 1, 8), r)  # a function of z, per layer
    layer = StochasticLinear(2, 3, bank=4)
    x = torch.randn(64, 2)
    routes = route(z, 0, 4)
    differs = torch.nonzero(routes != routes[0]).flatten()
    assert len(differs) > 0
    i = int(differs[0])
    y = layer(x, routes)
    w = layer.weights()
    assert torch.allclose(y[0], w[routes[0]] @ x[0] + layer.b[routes[0]], atol=1e-6)
    assert int(routes[i]) != int(routes[0])  # two samples of one batch, two different filter sets
    assert torch.allclose(y[i], w[routes[i]] @ x[i] + layer.b[routes[i]], atol=1e-6)
    # the same input through sample 0's filters would give another output: the route matters
    assert not torch.allclose(w[routes[0]] @ x[i] + layer.b[routes[0]], y[i])


def test_sdeconv_generator_uses_prelu_and_weight_norm():
    net = StochasticMLP(ModelSpec((2,), 2, 1, 16, bank=4, stochastic_layers=2))
    prelus = [m for m in net.modules() if isinstance(m, torch.nn.PReLU)]
    assert prelus and all(torch.allclose(p.weight, torch.full_like(p.weight, 0.2)) for p in prelus)
    stochastic = [m for m in net.modules() if isinstance(m, StochasticLinear)]
    assert len(stochastic) == 2 and all(m.bank == 4 for m in stochastic)
    w = stochastic[0].weights()  # weight norm: each filter's norm is its g
    assert torch.allclose(w.norm(dim=2, keepdim=True), stochastic[0].g, atol=1e-5)
    assert net(torch.randn(10, 2)).shape == (10, 2)


def test_the_resize_generator_upsamples_and_draws_no_checkerboard():
    from sharedgan.models.dcgan import generator, resize_generator
    from sharedgan.models.layers import UpsampleConv2d
    spec = ModelSpec((1, 32, 32), noise_dim=8, num_generators=2, width=4)
    net = resize_generator(spec)
    kinds = [type(m) for m in net.modules()]
    assert kinds.count(torch.nn.ConvTranspose2d) == 1 and kinds.count(UpsampleConv2d) == 3  # 4 → 8 → 16 → 32
    assert net(torch.randn(6, 8)).shape == (6, 1, 32, 32)
    # runs written with the two-module form (nn.Upsample, nn.Conv2d) load, strictly, and draw the same
    two_module = copy.deepcopy(net)
    for i, layer in enumerate(two_module.body):
        if isinstance(layer, torch.nn.Identity):
            two_module.body[i] = torch.nn.Upsample(scale_factor=2, mode="nearest")
        elif isinstance(layer, UpsampleConv2d):
            two_module.body[i] = torch.nn.Conv2d(layer.in_channels, layer.out_channels, 3, 1, 1,
                                                 bias=layer.bias is not None)
    two_module.load_state_dict(net.state_dict())
    net.load_state_dict(two_module.state_dict())
    z = torch.randn(6, 8)
    with torch.no_grad():
        assert torch.allclose(net.eval()(z), two_module.eval()(z), rtol=0, atol=1e-6)
    # why: with the layers' own geometry, one channel and random filters, the standard generator's
    # stride-2 transposed convolution turns a flat input into a 2-pixel grid (each output pixel's
    # parity picks its own quarter of the 4 × 4 filter); upsampling and a 3 × 3 convolution keep it flat
    t = [m for m in generator(spec).modules() if isinstance(m, torch.nn.ConvTranspose2d)][1]
    torch.manual_seed(0)
    standard = torch.nn.ConvTranspose2d(1, 1, t.kernel_size, t.stride, t.padding, bias=False)
    resized = UpsampleConv2d(1, 1, bias=False)
    x = torch.ones(1, 1, 8, 8)
    with torch.no_grad():
        inner = [f(x)[0, 0, 2:-2, 2:-2] for f in (standard, resized)]
    assert torch.equal(inner[0][::2, ::2], inner[0][2::2, 2::2][:1, :1].expand_as(inner[0][::2, ::2]))  # period 2
    assert inner[0].std() > 0.01 and torch.allclose(inner[1], inner[1][0, 0].expand_as(inner[1]))


@pytest.mark.parametrize("bias", [True, False])
def test_upsample_conv_is_nearest_upsampling_then_a_3x3_convolution(bias):
    """Computed as one stride-2 transposed convolution of summed taps: the same function, edges
    included, and the same gradients, to float64 rounding."""
    from sharedgan.models.layers import UpsampleConv2d
    torch.manual_seed(1)
    layer = UpsampleConv2d(3, 5, bias=bias).double()
    torch.nn.init.normal_(layer.weight)
    x = torch.randn(2, 3, 4, 7, dtype=torch.float64, requires_grad=True)
    y = layer(x)
    ref = torch.nn.functional.conv2d(torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"),
                                     layer.weight, layer.bias, 1, 1)
    assert y.shape == (2, 5, 8, 14) and torch.allclose(y, ref, rtol=0, atol=1e-12)
    g = torch.randn_like(y)
    mine = torch.autograd.grad(y, (x, layer.weight), g)
    theirs = torch.autograd.grad(ref, (x, layer.weight), g)
    assert all(torch.allclose(a, b, rtol=0, atol=1e-11) for a, b in zip(mine, theirs))


def test_pairwise_with_two_generators_has_one_head():
    config = TrainConfig(k=2, classifier="pairwise").validate()
    net = make_model(config, "classifier", model_spec(config))
    assert net(torch.zeros(5, 2)).shape == (5, 1)  # one pair: [m, 1], not flattened like D's [m]


def test_virtual_batch_norm_stays_finite_on_a_near_constant_channel():
    vbn = VirtualBatchNorm(1, reference_size=64)
    for seed in range(50):  # float32 cancellation can make ref_sq − ref_mean² slightly negative
        x = 300 + 1e-3 * torch.randn(80, 1, generator=torch.Generator().manual_seed(seed))
        assert torch.isfinite(vbn(x)).all()


def test_checkpoints_of_the_earlier_model_layout_still_load():
    """Runs written before the models exposed first/body and trunk/head keep loading."""
    from torch import nn

    from sharedgan.models import dcgan
    from sharedgan.models.mlp import mlp, mlp_discriminator, mlp_generator
    spec = ModelSpec((2,), 2, 3, 16)
    torch.manual_seed(0)
    old_g = nn.Sequential(mlp(2, 16, 2), nn.Flatten())  # the earlier generator: Sequential(mlp, reshape)
    new_g = mlp_generator(spec)
    new_g.load_state_dict(old_g.state_dict())
    z = torch.randn(4, 2)
    assert torch.equal(new_g(z), old_g(z))
    old_d = nn.Sequential(nn.Flatten(), mlp(2, 16, 1), nn.Flatten(0))
    new_d = mlp_discriminator(spec)
    new_d.load_state_dict(old_d.state_dict())
    assert torch.equal(new_d(z), old_d(z))
    image = ModelSpec((3, 32, 32), 100, 2, width=4)
    g = dcgan.generator(image)
    legacy = {("net." + str(int(k.split(".")[1]) + (3 if k.startswith("body") else 0)) + "." + k.split(".", 2)[2]): v
              for k, v in g.state_dict().items()}
    fresh = dcgan.generator(image)
    fresh.load_state_dict(legacy)
    fresh.eval(), g.eval()
    z = torch.randn(2, 100)
    assert torch.equal(fresh(z), g(z))
