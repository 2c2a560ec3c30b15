"""MGAN's parameter sharing: the classifier as a head on D's trunk (--shared-trunk), and generators
that share everything but their first layer (--share-generator-body). The engines agree bit for bit,
a resume does too, and the sharing is real."""
import json
import shutil

import pytest
import torch

from helpers.runs import assert_same_run, cut_back_to
from sharedgan import TrainConfig, resume, train
from sharedgan.roles.build import model_spec
from sharedgan.roles.classifier import ClassifierRole
from sharedgan.roles.discriminator import DiscriminatorRole
from sharedgan.roles.generator import SharedBody, make_body
from sharedgan.storage import checkpoint
from sharedgan.storage.runfile import read_run_file

pytestmark = pytest.mark.processes  # every test here starts processes (see pytest.ini)

BASE = dict(k=3, rounds=40, batch_size=32, hidden=16, eval_samples=200, eval_every=20, checkpoint_every=20, seed=5,
            shared_trunk=True, share_generator_body=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharing")
    return {e: train(TrainConfig(engine=e, out=str(root / e), **BASE)).run_dir for e in ("sequential", "parallel")}


def test_engines_agree_and_c_runs_in_ds_process(runs, leak_check):
    assert_same_run(runs["sequential"], runs["parallel"], TrainConfig(**BASE).roles)
    data = read_run_file(runs["parallel"] / "run.h5")  # C's time is reported as C's, apart from D's
    assert (data["time/classifier/compute"] > 0).all() and (data["time/discriminator/compute"] > 0).all()
    processes = json.loads((runs["parallel"] / "processes.json").read_text())
    assert "classifier" not in processes and "discriminator" in processes  # one process for D and C
    assert TrainConfig(**BASE).processes == ["generator-0", "generator-1", "generator-2", "discriminator"]


def test_the_body_is_one_and_the_first_layers_are_each_generators_own(runs):
    ckpt = checkpoint.latest(runs["parallel"])
    states = [checkpoint.load_role(ckpt, f"generator-{k}") for k in range(3)]
    body_keys = [key for key in states[0]["model"] if key.startswith("body.")]
    first_keys = [key for key in states[0]["model"] if key.startswith("first.")]
    assert body_keys and first_keys
    for key in body_keys:
        assert torch.equal(states[0]["model"][key], states[1]["model"][key]) and torch.equal(states[0]["model"][key],
                                                                                             states[2]["model"][key])
    assert not torch.equal(states[0]["model"][first_keys[0]], states[1]["model"][first_keys[0]])
    assert "body" in states[0] and "body" not in states[1]  # generator 0 owns the body's optimiser
    # the body trained: it moved away from its initial values
    config = TrainConfig(**BASE).validate()
    initial = make_body(config, model_spec(config)).state_dict()
    assert any(not torch.equal(initial[key.removeprefix("body.")], states[0]["model"][key]) for key in body_keys)


def test_the_classifier_checkpoint_holds_its_head_alone(runs):
    state = checkpoint.load_role(checkpoint.latest(runs["parallel"]), "classifier")
    assert sorted(state["model"]) == ["head.bias", "head.weight"]


def test_resume_in_the_other_engine_equals_uninterrupted(runs, tmp_path, leak_check):
    run_dir = tmp_path / "run"
    shutil.copytree(runs["sequential"], run_dir)
    cut_back_to(run_dir, 19)
    resume(run_dir, {"engine": "parallel"})
    assert_same_run(runs["sequential"], run_dir, TrainConfig(**BASE).roles)


def test_body_steps_on_the_sum_of_the_generators_gradients():
    config = TrainConfig(k=3, hidden=4, optimizer_generator="sgd", lr_generator=1.0, lr_decay="none").validate()
    body = make_body(config, model_spec(config))
    shared = SharedBody(config, body)
    size = sum(p.numel() for p in body.parameters())
    grads = torch.stack([torch.full((size,), 1.0), torch.full((size,), 2.0), torch.full((size,), 0.5)])
    before = [p.detach().clone() for p in body.parameters()]
    shared.apply(grads, 0)
    for p, b in zip(body.parameters(), before):  # SGD, lr 1: θ − (1 + 2 + 0.5)
        assert torch.allclose(p, b - 3.5)


def test_a_classifier_step_moves_ds_trunk_and_not_ds_head():
    config = TrainConfig(k=2, hidden=8, batch_size=16, eval_samples=10, shared_trunk=True).validate()
    spec = model_spec(config)
    disc = DiscriminatorRole(config, spec, dataset=None)
    clf = ClassifierRole(config, spec, discriminator=disc.net)
    trunk = [p.detach().clone() for p in disc.net.trunk.parameters()]
    head = [p.detach().clone() for p in disc.net.head.parameters()]
    from sharedgan.runtime.buffer import SlotBuffer, slot_fields
    buf = SlotBuffer.allocate(slot_fields(16, (2,), 10), 2, shared=False)
    buf.sample.copy_(torch.randn(2, 16, 2))
    buf.sample_round.fill_(0)
    clf.serve_slot(buf, 0, 0)
    assert any(not torch.equal(a, b) for a, b in zip(trunk, disc.net.trunk.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(head, disc.net.head.parameters()))


@pytest.mark.parametrize("options, message", [
    (dict(shared_trunk=True, engine="async"), "--shared-trunk works with"),
    (dict(share_generator_body=True, engine="async"), "--share-generator-body works with"),
    (dict(share_generator_body=True, generator="sdeconv"), "standard generator"),
    (dict(shared_trunk=True, on_failure="respawn"), "--shared-trunk runs C inside D's process"),
])
def test_unsupported_combinations_are_refused(options, message):
    from sharedgan import ConfigError
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**options).validate()


def test_a_tied_body_shares_parameters_and_keeps_its_own_statistics():
    from sharedgan.roles.generator import tied_copy
    body = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    twin = tied_copy(body)
    assert all(a is b for a, b in zip(body.parameters(), twin.parameters()))
    twin(torch.randn(8, 3) * 5)  # a training-mode pass updates the twin's running statistics only
    assert not torch.equal(twin[1].running_mean, body[1].running_mean)


def test_building_a_shared_head_leaves_ds_batch_norm_statistics_alone(tmp_path):
    from sharedgan.roles.build import make_model
    config = TrainConfig(k=2, dataset="mnist", width=4, shared_trunk=True)
    config.noise_dim, config.eval_samples = 100, 8
    for role in ("generator", "discriminator", "classifier"):
        setattr(config, f"{role}_factory", f"sharedgan.models.dcgan:{role}")
    from sharedgan.models.spec import ModelSpec
    spec = ModelSpec((1, 32, 32), 100, 2, width=4)
    disc = make_model(config, "discriminator", spec)
    before = {k: v.clone() for k, v in disc.state_dict().items()}
    make_model(config, "classifier", spec, discriminator=disc)
    assert all(torch.equal(before[k], v) for k, v in disc.state_dict().items())
