"""Realness (precision, recall, density, coverage): hand-computed on points, then on constructed
image "generators": real images score like real ones, noise scores nothing, a collapsed one has
no recall, and a noise-drawing generator is flagged unreal."""
import numpy as np
import pytest
import torch

from sharedgan.eval import coverage, realness
from test_coverage import as_samples, own_data


def test_prdc_on_points_against_hand_computed_values():
    # real: 0, 1, 2, 3 on a line; k = 1: every real's radius is 1
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]], dtype=torch.float64)
    radii = realness.kth_neighbour_radii(real, 1)
    assert radii.tolist() == [1.0, 1.0, 1.0, 1.0]
    fake = torch.tensor([[0.5], [10.0], [11.5]], dtype=torch.float64)
    r = realness.prdc(real, radii, fake, k=1)
    assert r["precision"] == pytest.approx(1 / 3)  # only 0.5 lies in a real ball (those of 0 and 1)
    assert r["density"] == pytest.approx(2 / 3)  # 0.5 is in two balls: (1/kM)·2
    assert r["coverage"] == pytest.approx(2 / 4)  # reals 0 and 1 hold a fake
    # fake radii, k = 1: 0.5 → 9.5 (to 10), 10 → 1.5, 11.5 → 1.5; reals within 9.5 of 0.5: all four
    assert r["recall"] == pytest.approx(1.0)
    assert np.isnan(realness.prdc(real, radii, fake[:1], k=1)["recall"])  # M ≤ k: no k-th fake neighbour


def test_real_samples_score_like_real_and_noise_scores_nothing():
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(2000, 8, generator=gen, dtype=torch.float64)
    radii = realness.kth_neighbour_radii(real, 5)
    same = realness.prdc(real, radii, torch.randn(500, 8, generator=gen, dtype=torch.float64), 5)
    assert same["precision"] > 0.9 and same["recall"] > 0.9 and 0.8 < same["density"] < 1.2
    far = realness.prdc(real, radii, torch.randn(500, 8, generator=gen, dtype=torch.float64) + 10, 5)
    assert far["precision"] == 0 and far["recall"] == 0 and far["coverage"] == 0


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    data = own_data(tmp_path_factory.mktemp("realness"))
    trained, _ = coverage.classifier_for(data, epochs=3)
    return data, coverage.realness_judge(trained, data)


def test_held_out_images_are_the_baseline_and_never_the_reference(judged):
    data, judge = judged
    assert len(judge.reference) == 324 and len(judge.held_out) == 36  # the classifier's 90% / 10%
    base = judge.baseline(36)
    assert base["precision"] > 0.8 and base["recall"] > 0.8, base
    assert base["precision"] < 1.0 or base["density"] < 2.0  # not flattered by zero distances


def test_a_noise_drawing_generator_is_unreal_and_a_collapsed_one_has_no_recall(judged):
    data, judge = judged
    real = as_samples(data.images[:90])
    noise = torch.rand(30, *real.shape[1:], generator=torch.Generator().manual_seed(1)) * 2 - 1
    one = real[:1].expand(30, *real.shape[1:])
    samples = torch.cat([real[:30], noise, one])
    ids = torch.arange(3).repeat_interleave(30)
    report = judge.report(samples, ids, 3)
    p, r = report.generators["precision"], report.generators["recall"]
    assert report.m == 30 and report.k == realness.K_NEIGHBOURS
    assert p[0] > 0.8 and p[1] < 0.1 and p[2] == 1.0, p  # one real image repeated is real, but
    assert r[2] < 0.2 < r[0], r  # it covers nothing: spread and recall see that collapse
    assert report.unreal() == [1]
    assert report.real["precision"] > 0.8
    text = realness.format_realness(report)
    assert "unreal              1/3 (generator 1" in text and "k = 5, 30 samples per row" in text


def test_a_generator_with_no_samples_is_not_judged(judged):
    data, judge = judged
    samples = as_samples(data.images[:20])
    report = judge.report(samples, torch.zeros(20, dtype=torch.long), 2)
    assert report.m == 20 and np.isnan(report.generators["precision"][1]) and report.unreal() == []
    nothing = judge.report(samples[:1], torch.zeros(1, dtype=torch.long), 1)
    assert nothing.m == 0 and "not judged" in realness.format_realness(nothing)


def test_a_generator_with_too_few_samples_is_left_out_alone(judged):
    data, judge = judged
    samples = as_samples(data.images[:41])
    ids = torch.cat([torch.zeros(40, dtype=torch.long), torch.ones(1, dtype=torch.long)])  # generator 1: one sample
    report = judge.report(samples, ids, 2)
    assert report.m == 36 and report.generators["precision"][0] > 0.5
    assert np.isnan(report.generators["precision"][1]) and report.unreal() == []


def test_a_run_builds_its_judge_before_training_and_leaves_the_global_rng_alone(tmp_path):
    import h5py

    from helpers.data_files import learnable_images
    from sharedgan import TrainConfig
    from sharedgan.engines.recorder import RunRecorder
    from sharedgan.roles.build import dataset_of
    images, labels = learnable_images(120, 3)
    with h5py.File(tmp_path / "stripes.h5", "w") as f:
        f["images"], f["labels"] = images, labels
    config = TrainConfig(dataset=str(tmp_path / "stripes.h5"), data_dir=str(tmp_path / "data"), k=2).validate()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    recorder = RunRecorder(config, tmp_path / "run", dataset_of(config))
    assert torch.equal(torch.get_rng_state(), before)  # the sequential engine's roles checkpoint this RNG
    assert recorder._judge and len(recorder._judge.held_out) == 12
    off = RunRecorder(TrainConfig(**{**config.__dict__, "realness": "off"}), tmp_path / "run", dataset_of(config))
    assert off._judge is False
