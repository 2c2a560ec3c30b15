import numpy as np
import pytest
import torch

from sharedgan.data.mixtures import grid, make_dataset, ring
from sharedgan.eval.modes import mix, mixture_assignment, mode_report


def test_ring_and_grid_geometry():
    r = ring()
    assert r.centers.shape == (8, 2) and r.std == 0.02
    assert torch.allclose(r.centers.norm(dim=1), torch.full((8,), 2.0))
    assert torch.allclose(r.centers[2], torch.tensor([0.0, 2.0]), atol=1e-6)
    g = grid()
    assert g.centers.shape == (25, 2) and g.std == 0.05
    assert sorted(set(g.centers[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert make_dataset("ring8", ring_modes=5, ring_radius=3.0, mode_std=0.1).centers.shape == (5, 2)
    with pytest.raises(ValueError, match="unknown dataset"):
        make_dataset("cifar11")


def test_mode_report_counts_by_hand():
    r = ring()
    c = r.centers
    # 50 at mode 0 (gen 0), 30 at mode 1 (gen 1), 19 at mode 2 just inside 3 std (gen 1),
    # 1 far from every mode (gen 0), 1 at mode 3 just outside 3 std (gen 2)
    inside = c[2] + torch.tensor([0.059, 0.0])
    outside = c[3] * (1 + 0.061 / 2)
    samples = torch.cat([c[0].repeat(50, 1), c[1].repeat(30, 1), inside.repeat(19, 1),
                         torch.zeros(1, 2), outside.view(1, 2)])
    gens = torch.tensor([0] * 50 + [1] * 49 + [0] + [2])
    rep = mode_report(samples, gens, c, r.std, num_generators=3)
    assert rep.num_samples == 101
    assert rep.high_quality == pytest.approx(99 / 101)
    assert rep.mode_histogram.tolist() == [50, 30, 19, 0, 0, 0, 0, 0]
    assert rep.modes_covered == 3 and rep.modes_covered_lenient == 3
    # Σ p log(8p) with p = 50/99, 30/99, 19/99
    assert rep.kl_uniform == pytest.approx(1.0558511089738758, rel=1e-9)
    assert rep.generator_table.tolist() == [
        [50, 0, 0, 0, 0, 0, 0, 0, 1],
        [0, 30, 19, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 1],
    ]


def test_one_percent_rule_versus_lenient():
    r = ring()
    samples = torch.cat([r.centers[0].repeat(199, 1), r.centers[1].view(1, 2)])
    rep = mode_report(samples, torch.zeros(200, dtype=torch.long), r.centers, r.std, 1)
    assert rep.modes_covered == 1  # one sample in 200 is 0.5% < 1%
    assert rep.modes_covered_lenient == 2


def test_uniform_coverage_has_zero_kl():
    r = ring()
    samples = r.centers.repeat(10, 1)
    rep = mode_report(samples, torch.zeros(80, dtype=torch.long), r.centers, r.std, 1)
    assert rep.kl_uniform == pytest.approx(0.0, abs=1e-12) and rep.modes_covered == 8


def test_mixture_takes_each_sample_from_its_generator():
    k, n = 3, 300
    eval_samples = torch.arange(k, dtype=torch.float32).view(k, 1, 1).expand(k, n, 2).clone()
    which = mixture_assignment(n, k, seed=1, round_index=5)
    assert torch.equal(which, mixture_assignment(n, k, seed=1, round_index=5))
    assert not torch.equal(which, mixture_assignment(n, k, seed=1, round_index=6))
    mixed = mix(eval_samples, which)
    assert torch.equal(mixed[:, 0], which.float())
    counts = np.bincount(which.numpy(), minlength=k)
    assert counts.min() > 70  # uniform over generators
