"""IS/FID through torch-fidelity (the optional extra). Skipped where torch-fidelity cannot be
imported (CI: it needs a torchvision that matches torch). Its Inception weights cannot be
downloaded on these machines, so the integration runs with a randomly initialised InceptionV3
saved to a file: the numbers mean nothing, the plumbing is real."""
import urllib.error

import h5py
import numpy as np
import pytest
import torch

try:
    import torch_fidelity.feature_extractor_inceptionv3 as inception_module
except Exception:  # noqa: BLE001 - a mismatched torchvision fails with RuntimeError, not ImportError
    pytest.skip("torch-fidelity is not importable here (pip install 'sharedgan[metrics]')", allow_module_level=True)

from helpers.data_files import learnable_images
from sharedgan import TrainConfig, load_run, train
from sharedgan.eval.fidelity import MetricsUnavailable, inception_metrics

SMOKE = dict(k=2, width=4, rounds=4, batch_size=8, eval_every=4, checkpoint_every=4, seed=3)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """A state dict of torch-fidelity's own InceptionV3, randomly initialised (built once with its
    download and its weight loading switched off)."""
    cls = inception_module.FeatureExtractorInceptionV3
    real_fetch, real_load = inception_module.load_state_dict_from_url, cls.load_state_dict
    inception_module.load_state_dict_from_url = lambda *a, **k: {}
    cls.load_state_dict = lambda self, state, *a, **k: None
    try:
        net = cls("inception-v3-compat", ["2048", "logits_unbiased"])
    finally:
        inception_module.load_state_dict_from_url, cls.load_state_dict = real_fetch, real_load
    torch.manual_seed(0)
    for m in net.modules():  # variance-preserving init, so features still depend on the input 40 layers on
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("weights") / "random-inception.pth"
    torch.save(net.state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("fid")
    images, labels = learnable_images(60, 3)
    with h5py.File(root / "stripes.h5", "w") as f:
        f["images"], f["labels"] = images, labels
    return train(TrainConfig(dataset=str(root / "stripes.h5"), engine="sequential", out=str(root / "run"),
                             data_dir=str(root / "data"), **SMOKE)).run_dir


def test_mixture_and_each_generator_are_scored(image_run, random_weights):
    results, real = load_run(image_run).inception(n=24, weights_path=random_weights)
    assert real == 24 and set(results) == {"mixture", "generator-0", "generator-1"}
    assert results["mixture"]["samples"] == 24
    assert results["generator-0"]["samples"] + results["generator-1"]["samples"] == 24
    for m in results.values():
        assert m["inception_score_mean"] >= 1.0 - 1e-6 and np.isfinite(m["fid"]) and m["fid"] >= 0
        assert np.isfinite(m["kid"]) and np.isfinite(m["kid_std"])  # unbiased: may dip below 0 near a match


def test_fid_of_a_set_against_itself_is_zero_and_against_noise_is_not(tmp_path, random_weights):
    real, _ = learnable_images(40, 3)
    same = inception_metrics(real, np.zeros(40, dtype=np.int64), 1, real, "self", tmp_path, random_weights)
    noise = np.random.default_rng(0).integers(0, 256, real.shape, dtype=np.uint8)
    other = inception_metrics(noise, np.zeros(40, dtype=np.int64), 1, real, "self", tmp_path, random_weights)
    assert abs(same["mixture"]["fid"]) < 1e-2 and other["mixture"]["fid"] > 100 * max(abs(same["mixture"]["fid"]), 1e-3)


def test_no_weights_and_no_network_is_a_clear_message(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(inception_module, "load_state_dict_from_url", offline)
    real, _ = learnable_images(8, 3)
    with pytest.raises(MetricsUnavailable, match="could not get its Inception weights.*--inception-weights PATH"):
        inception_metrics(real, np.zeros(8, dtype=np.int64), 1, real, "x", tmp_path)
