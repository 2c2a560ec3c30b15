import math

import pytest

from sharedgan.math.beta_schedule import BetaSchedule, default_decay, loss_gaps

E_M1 = 0.36787944117144233       # exp(−1)
TWO_SIG_M2 = 0.2384058440442351  # 2σ(−2) = 2 / (1 + e²)


def test_constant():
    s = BetaSchedule("constant", beta0=0.7)
    assert s(0) == 0.7 and s(10_000, loss_gap=5.0) == 0.7


def test_time_decay():
    s = BetaSchedule("time", beta0=1.0, decay=0.01)
    assert s(0) == 1.0
    assert s(100) == pytest.approx(E_M1, rel=1e-12)
    assert s(100, loss_gap=9.0) == pytest.approx(E_M1, rel=1e-12)  # ignores the gap


def test_loss_gap():
    s = BetaSchedule("loss-gap", beta0=2.0, tau=0.5)
    assert s(50, loss_gap=0.0) == 2.0  # 2σ(0) = 1
    assert s(50, loss_gap=1.0) == pytest.approx(2.0 * TWO_SIG_M2, rel=1e-12)
    assert s(50, loss_gap=-1.0) == s(50, loss_gap=1.0)  # |Δ|
    assert s(0, loss_gap=1e6) == 0.0  # no overflow


def test_combined_is_the_product():
    s = BetaSchedule("combined", beta0=1.0, decay=0.01, tau=0.5)
    assert s(100, loss_gap=1.0) == pytest.approx(0.08770460867899925, rel=1e-12)


def test_default_decay_ends_at_one_percent():
    assert default_decay(1000) == pytest.approx(0.004605170185988092, rel=1e-12)
    assert math.exp(-default_decay(1000) * 1000) == pytest.approx(0.01)


def test_loss_gaps_against_mean():
    assert loss_gaps([1.0, 2.0, 3.0, 6.0]) == [-2.0, -1.0, 0.0, 3.0]


def test_unknown_schedule():
    with pytest.raises(ValueError, match="unknown beta schedule"):
        BetaSchedule("cosine")
