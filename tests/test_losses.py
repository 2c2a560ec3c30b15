"""Every objective against literal constants worked out by hand (not by the code under test)."""
import math

import pytest
import torch

from sharedgan.math import losses

LN2 = 0.6931471805599453            # softplus(0)
SP_M2 = 0.1269280110429725          # softplus(-2) = ln(1 + e^-2)
SP_M1 = 0.31326168751822286         # softplus(-1)
SP_1 = 1.3132616875182228           # softplus(1)
LOGIT_099 = 4.59511985013459        # ln(0.99 / 0.01)


def test_discriminator_loss_is_minus_JD():
    # −J^D = −½(log σ(0) + log σ(2)) − ½(log(1−σ(−1)) + log(1−σ(1)))
    d_real, d_fake = torch.tensor([0.0, 2.0]), torch.tensor([-1.0, 1.0])
    value = losses.discriminator_loss(d_real, d_fake).item()
    assert value == pytest.approx((LN2 + SP_M2) / 2 + (SP_M1 + SP_1) / 2, abs=1e-7)
    assert value == pytest.approx(1.2232992833196816, abs=1e-6)


def test_classifier_loss_treats_other_generators_as_real():
    # other-generator sample with logit 1 → −log σ(1) = softplus(−1); own sample with logit 1 → softplus(1)
    value = losses.classifier_loss(torch.tensor([1.0]), torch.tensor([1.0])).item()
    assert value == pytest.approx(SP_M1 + SP_1, abs=1e-6)
    # swapping roles must change the value: the sign convention matters
    assert losses.classifier_loss(torch.tensor([-3.0]), torch.tensor([3.0])).item() > 6.0


def test_generator_d_term_is_one_minus_d_truncated():
    d = torch.tensor([0.0, 1.0, 5.0], requires_grad=True)
    term = losses.generator_d_term(d, threshold=0.99)
    # (1 − 0) + (1 − 1) + (1 − logit 0.99), over 3; the third sample is past t = 0.99 and is clamped
    assert term.item() == pytest.approx((1 + 0 + 1 - LOGIT_099) / 3, abs=1e-6)
    assert term.item() == pytest.approx(-0.8650399500448632, abs=1e-6)
    (grad,) = torch.autograd.grad(term, d)
    # the paper's slip would be 1 + d, whose gradient is +1/3; ours lowers the loss as d rises
    assert grad.tolist() == pytest.approx([-1 / 3, -1 / 3, 0.0], abs=1e-7)


def test_generator_c_term_is_softplus_and_stable():
    c = torch.tensor([0.0, -2.0], requires_grad=True)
    term = losses.generator_c_term(c)
    assert term.item() == pytest.approx((LN2 + SP_M2) / 2, abs=1e-7)
    (grad,) = torch.autograd.grad(term, c)
    # d softplus(c)/dc = σ(c); σ(0) = 0.5, σ(−2) = 0.11920292202211755, each over m = 2
    assert grad.tolist() == pytest.approx([0.25, 0.11920292202211755 / 2], abs=1e-7)
    # −log(1 − σ(c)) computed naively is inf at c = 100 in float32; softplus is finite (= c)
    big = losses.generator_c_term(torch.tensor([100.0]))
    assert math.isfinite(big.item()) and big.item() == pytest.approx(100.0)


def test_threshold_logit_rejects_non_probabilities():
    assert losses.threshold_logit(0.5) == 0.0
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError):
            losses.threshold_logit(bad)


def test_input_gradient_carries_one_over_m():
    x = torch.ones(4, 2, requires_grad=True)
    grad = losses.input_gradient((x.sum(dim=1) * 3).mean(), x)
    assert torch.allclose(grad, torch.full((4, 2), 3 / 4))


SP_2 = 2.1269280110429727           # softplus(2)


def test_non_saturating_generator_term_is_minus_log_D():
    d = torch.tensor([0.0, 2.0, -1.0], requires_grad=True)
    term = losses.generator_d_term(d, threshold=0.99, kind="ns")
    # −log σ(d) = softplus(−d): ln 2, softplus(−2), softplus(1), over 3 (no truncation)
    assert term.item() == pytest.approx((LN2 + SP_M2 + SP_1) / 3, abs=1e-7)
    assert term.item() == pytest.approx(0.7111122930403803, abs=1e-6)
    (grad,) = torch.autograd.grad(term, d)
    # d/dd softplus(−d) = −σ(−d): −0.5, −σ(−2) = −0.11920292, −σ(1) = −0.73105858, each over 3
    assert grad.tolist() == pytest.approx([-0.5 / 3, -0.11920292202211755 / 3, -0.7310585786300049 / 3], abs=1e-7)


def test_minimax_generator_term_is_log_one_minus_D():
    d = torch.tensor([0.0, 2.0, -1.0], requires_grad=True)
    term = losses.generator_d_term(d, threshold=0.99, kind="minimax")
    # log(1 − σ(d)) = −softplus(d): −ln 2, −softplus(2), −softplus(−1), over 3
    assert term.item() == pytest.approx(-(LN2 + SP_2 + SP_M1) / 3, abs=1e-7)
    assert term.item() == pytest.approx(-1.0444456263737136, abs=1e-6)
    (grad,) = torch.autograd.grad(term, d)
    # −σ(d)/3: it vanishes as D rejects the sample (d → −∞), the saturation ns avoids
    assert grad.tolist() == pytest.approx([-0.5 / 3, -0.8807970779778823 / 3, -0.2689414213699951 / 3], abs=1e-7)


def test_one_sided_label_smoothing_moves_only_the_real_target():
    d_real, d_fake = torch.tensor([0.0, 2.0]), torch.tensor([0.0])
    value = losses.discriminator_loss(d_real, d_fake, real_target=0.9).item()
    # real: ½[(0.9 + 0.1) ln 2 + 0.9 softplus(−2) + 0.1 softplus(2)]; fake (target 0): ln 2
    assert value == pytest.approx((LN2 + 0.9 * SP_M2 + 0.1 * SP_2) / 2 + LN2, abs=1e-7)
    assert value == pytest.approx(1.2031847763614043, abs=1e-6)
    assert (losses.discriminator_loss(d_real, d_fake, real_target=1.0).item()
            == pytest.approx((LN2 + SP_M2) / 2 + LN2, abs=1e-7))


def test_historical_averaging_pulls_towards_the_mean_of_past_parameters():
    from sharedgan.config import TrainConfig
    from sharedgan.roles.base import RoleState

    role = RoleState()
    role.name, role.config = "probe", TrainConfig(historical_averaging=1.0)
    role.net = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        role.net.weight.fill_(1.0)
    role.opt = torch.optim.SGD(role.net.parameters(), lr=0.1)
    thetas = []
    for _ in range(2):
        role.net.weight.grad = torch.tensor([[0.5]])  # the role's own gradient
        role.step()
        thetas.append(role.net.weight.item())
    # step 1: θ̄ = θ0 = 1, no pull: 1 − 0.1·0.5 = 0.95; θ̄ → (1 + 0.95)/2 = 0.975
    # step 2: pull 2·1·(0.95 − 0.975) = −0.05, so 0.95 − 0.1·(0.5 − 0.05) = 0.905; θ̄ → (1 + 0.95 + 0.905)/3
    assert thetas == pytest.approx([0.95, 0.905], abs=1e-7)
    assert role._history[0] == 3 and role._history[1][0].item() == pytest.approx(2.855 / 3, abs=1e-7)
    state = role.state_dict(0)
    again = RoleState()
    again.config, again.net, again.opt = (role.config, torch.nn.Linear(1, 1, bias=False),
                                          torch.optim.SGD(role.net.parameters(), lr=0.1))
    again.load_state_dict(state)  # the history travels with the checkpoint (bit-exact resume)
    assert again._history[0] == 3 and torch.equal(again._history[1][0], role._history[1][0])


def test_hinge_losses_against_hand_computed_values():
    d_real, d_fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.5])
    # real: max(0, 1 − d) = 0, 0.5, 2 → mean 2.5/3; fake: max(0, 1 + d) = 0, 1, 2.5 → mean 3.5/3
    assert losses.discriminator_loss(d_real, d_fake, kind="hinge").item() == pytest.approx(6.0 / 3)
    # the generator's term is −E[d], untruncated: a fake beyond logit(0.99) still pulls
    assert losses.generator_d_term(torch.tensor([1.0, 7.0]), 0.99, "hinge").item() == pytest.approx(-4.0)
    x = torch.tensor([7.0], requires_grad=True)
    losses.generator_d_term(x, 0.99, "hinge").backward()
    assert x.grad.item() == -1.0  # pgan's truncation would give 0 here


def test_r1_penalty_is_half_gamma_times_the_squared_input_gradient():
    # d(x) = 3·x₁ − 4·x₂ on two samples: ∇ₓd = (3, −4) for each, ‖·‖² = 25
    real = torch.tensor([[1.0, 2.0], [0.5, -1.0]], requires_grad=True)
    d = real @ torch.tensor([3.0, -4.0])
    assert losses.r1_penalty(d, real, gamma=0.2).item() == pytest.approx(0.5 * 0.2 * 25)
    # a quadratic D: d(x) = x₁², ∇ = (2x₁, 0), ‖·‖² = 4x₁² → mean 4·(1 + 0.25)/2 = 2.5; it is in the graph
    w = torch.tensor(1.0, requires_grad=True)
    d = w * real[:, 0] ** 2
    penalty = losses.r1_penalty(d, real, gamma=2.0)
    assert penalty.item() == pytest.approx(2.5)
    penalty.backward()
    assert w.grad.item() == pytest.approx(2 * 2.5)  # penalty = w² · 2.5: D descends it


def test_ema_decay_warms_up_then_holds():
    assert losses.ema_decay(0.999, 0) == pytest.approx(0.1)
    assert losses.ema_decay(0.999, 10) == pytest.approx(11 / 20)
    assert losses.ema_decay(0.9, 10_000) == 0.9
