"""The Python API with a user's own model factory from a module that is not part of sharedgan."""
import multiprocessing.resource_tracker as resource_tracker

import pytest
import torch

from helpers.launch import FIXTURES
from helpers.leaks import Snapshot, wait_clean
from sharedgan import ConfigError, TrainConfig, load_run, train
from sharedgan.storage import checkpoint


@pytest.fixture(autouse=True)
def fixtures_on_path(monkeypatch):
    monkeypatch.syspath_prepend(FIXTURES)  # spawned children inherit sys.path


def test_user_factory_runs_in_every_process_without_leaking_fds(tmp_path):
    def run(name):
        return train(TrainConfig(k=2, rounds=30, eval_every=15, eval_samples=200, batch_size=32, hidden=16,
                                 generator_factory="user_models:wide_generator", out=str(tmp_path / name)))

    # A first run lets once-per-process caches open their files (multiprocessing's resource
    # tracker, matplotlib's fonts); a leak is whatever a further run adds on top.
    resource_tracker.ensure_running()
    run("warm-up")
    before = Snapshot.take()
    result = run("run")
    assert not wait_clean(before, fds=True), "the run leaked"
    assert result.status == "complete" and result.rounds_completed == 30
    assert set(result.metrics) >= {"modes_covered", "high_quality", "kl_uniform", "round"}
    state = torch.load(checkpoint.latest(result.run_dir) / "generator-1.pt", weights_only=True)["model"]
    assert state["body.0.weight"].shape == (48, 2)  # the user's module, not the built-in MLP
    samples, which = load_run(result.run_dir, trust=True).sample(100, seed=1)  # (its own factory: consent)
    assert samples.shape == (100, 2) and set(which.tolist()) <= {0, 1}
    again, _ = load_run(result.run_dir, trust=True).sample(100, seed=1)
    assert torch.equal(samples, again)


def module_level_factory(spec):
    from sharedgan.models.mlp import mlp_generator
    return mlp_generator(spec)


def test_callables_are_turned_into_references(tmp_path):
    result = train(TrainConfig(k=2, rounds=3, eval_every=3, eval_samples=50, batch_size=8, hidden=8,
                               engine="sequential", generator_factory=module_level_factory, out=str(tmp_path / "r")))
    assert load_run(result.run_dir, trust=True).config.generator_factory == "test_api:module_level_factory"


def test_lambda_factory_is_refused_clearly(tmp_path):
    with pytest.raises(ConfigError, match="lambdas and local functions"):
        train(TrainConfig(generator_factory=lambda spec: None, out=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()


def test_missing_module_is_refused_clearly(tmp_path):
    with pytest.raises(ConfigError, match="cannot import module 'nowhere'"):
        train(TrainConfig(discriminator_factory="nowhere:make", out=str(tmp_path / "r")))


def test_dict_config_and_unknown_keys(tmp_path):
    with pytest.raises(ConfigError, match="unknown config keys: kk"):
        train({"kk": 3})


def test_defaults_that_depend_on_the_data_are_filled_in_and_an_explicit_value_wins():
    # β0 = 3 on 2-D data is a measured choice (README, docs/reproduce-2d); images keep PGAN's 1.
    ring = TrainConfig().validate()
    assert (ring.beta0, ring.noise_dim, ring.eval_samples) == (3.0, 2, 2500)
    cifar = TrainConfig(dataset="cifar10").validate()
    assert (cifar.beta0, cifar.noise_dim, cifar.eval_samples) == (1.0, 100, 64)
    assert TrainConfig(beta0=0.5).validate().beta0 == 0.5
    assert TrainConfig(dataset="grid25", beta0=0.0).validate().beta0 == 0.0
