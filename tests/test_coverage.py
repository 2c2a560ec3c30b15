"""Class coverage: the classifier learns what it can, refuses what it cannot, is cached, and the
report counts classes the way the 2-D mode table counts modes."""
import math

import h5py
import numpy as np
import pytest
import torch

from helpers.data_files import learnable_images
from sharedgan.data.images import load, to_uint8
from sharedgan.eval import coverage


def own_data(tmp_path, n=360, classes=3, labels=True, shuffle_labels=False, name="mine"):
    images, y = learnable_images(n, classes)
    if shuffle_labels:  # labels that say nothing about the images: no classifier can learn them
        y = np.random.default_rng(1).permutation(y)
    with h5py.File(tmp_path / f"{name}.h5", "w") as f:
        f["images"] = images
        if labels:
            f["labels"] = y
    return load(str(tmp_path / f"{name}.h5"), cache_dir=tmp_path / "cache")


def as_samples(images_uint8):
    return torch.from_numpy(np.array(images_uint8)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    data = own_data(tmp_path_factory.mktemp("cov"))
    trained, fresh = coverage.classifier_for(data, epochs=3)
    return data, trained, fresh


def test_the_classifier_learns_labelled_data_and_is_cached(learned):
    data, trained, fresh = learned
    assert fresh and trained.accuracy >= 0.95 and trained.held_out == 36  # 10% of 360 kept aside
    again, fresh_again = coverage.classifier_for(data, epochs=3)
    assert not fresh_again and again.accuracy == trained.accuracy
    probe = as_samples(np.asarray(data.images[:16]))
    assert torch.equal(coverage.predict(again.net, probe), coverage.predict(trained.net, probe))


def test_report_of_real_images_and_of_a_collapsed_mixture(learned):
    data, trained, _ = learned
    real = np.asarray(data.images[:300])
    truth = data.labels[:300]
    which = torch.arange(300) % 2
    rep = coverage.class_coverage(trained, as_samples(real), which, num_generators=2)
    assert rep.classes_covered == 3 and rep.num_samples == 300
    assert np.array_equal(rep.class_histogram.sum(), 300) and rep.generator_table.sum(axis=1).tolist() == [150, 150]
    agree = np.bincount(truth, minlength=3)
    assert np.abs(rep.class_histogram - agree).sum() <= 0.1 * 300
    collapsed = real[truth == 1][:50]
    rep = coverage.class_coverage(trained, as_samples(collapsed), torch.zeros(50, dtype=torch.long), 1)
    assert rep.classes_covered == 1 and rep.class_histogram.tolist() == [0, 50, 0]
    assert rep.kl_uniform == pytest.approx(math.log(3), abs=1e-9)  # all mass on one of 3 classes
    assert "classes covered     1/3" in coverage.format_coverage(rep)


def test_a_weak_classifier_or_no_labels_is_refused(tmp_path):
    noisy = own_data(tmp_path, n=120, shuffle_labels=True, name="noisy")
    weak, _ = coverage.classifier_for(noisy, epochs=1)
    assert weak.accuracy < coverage.MIN_ACCURACY
    with pytest.raises(coverage.CoverageRefused, match=r"below the 80% needed; train it longer"):
        coverage.class_coverage(weak, as_samples(np.asarray(noisy.images[:10])), torch.zeros(10), 1)
    report = coverage.class_coverage(weak, as_samples(np.asarray(noisy.images[:10])), torch.zeros(10), 1,
                                     min_accuracy=0.0)
    assert report.num_samples == 10  # the gate is the only thing that refused
    unlabelled = own_data(tmp_path, n=40, labels=False, name="plain")
    with pytest.raises(coverage.CoverageRefused, match="no class labels"):
        coverage.classifier_for(unlabelled, epochs=1)


def test_a_stale_or_damaged_cache_is_retrained(tmp_path):
    data = own_data(tmp_path, n=60)
    _, fresh = coverage.classifier_for(data, epochs=1)
    path = coverage.cache_path(data, 1, 0)
    path.write_bytes(path.read_bytes()[:100])  # damaged
    _, fresh_again = coverage.classifier_for(data, epochs=1)
    assert fresh and fresh_again and torch.load(path, weights_only=True)["source_id"] == data.source_id


def test_to_uint8_round_trip_keeps_the_classifier_s_view(learned):
    data, trained, _ = learned
    real = np.asarray(data.images[:20])
    back = as_samples(to_uint8(as_samples(real)))
    assert torch.equal(coverage.predict(trained.net, back), coverage.predict(trained.net, real))
