"""The batched baseline: where it is Algorithm 1 (K = 1, and each slot's error from one pass),
and that it trains."""
import copy

import numpy as np
import pytest
import torch

from sharedgan import TrainConfig, train
from sharedgan.buffer import SlotBuffer, slot_fields
from sharedgan.losses import classifier_loss
from sharedgan.record import read_run_file
from sharedgan.roles import dataset_of, model_spec
from sharedgan.roles.classifier import ClassifierRole
from sharedgan.roles.discriminator import DiscriminatorRole

SMALL = dict(rounds=30, batch_size=32, eval_every=15, checkpoint_every=15, seed=11)


def _buffer(cfg):
    spec = model_spec(cfg)
    buf = SlotBuffer.allocate(slot_fields(cfg.batch_size, spec.sample_shape, 4), cfg.k, shared=False)
    buf.sample.copy_(torch.randn(buf.sample.shape, generator=torch.Generator().manual_seed(0)))
    buf.sample_round.fill_(0)
    return buf, spec


def test_with_one_generator_batched_is_the_sequential_engine(tmp_path):
    a, b = (read_run_file(train(TrainConfig(k=1, engine=e, out=str(tmp_path / e), **SMALL)).run_dir / "run.h5")
            for e in ("sequential", "batched"))
    for name in ("loss/generator", "loss/discriminator", "eval/samples"):
        assert np.array_equal(a[name], b[name]), name


def test_one_pass_gives_every_slot_its_own_error():
    """D scores the K slots in one pass: each slot's error equals scoring it alone with the same D."""
    cfg = TrainConfig(k=3, batch_size=16).validate()
    buf, spec = _buffer(cfg)
    disc = DiscriminatorRole(cfg, spec, dataset_of(cfg))
    disc.validate_all(buf, 0)
    together = buf.d_grad.clone(), buf.d_term.clone()
    for k in range(cfg.k):
        disc.validate(buf, k, 0)  # no update in between: the same D
    assert torch.allclose(buf.d_grad, together[0], atol=1e-7) and torch.allclose(buf.d_term, together[1])
    assert buf.d_round.tolist() == [0, 0, 0]


def test_classifier_steps_once_on_the_sum_of_its_heads():
    cfg = TrainConfig(k=3, batch_size=16, optimizer_classifier="sgd", lr_classifier=0.1, lr_decay="none").validate()
    buf, spec = _buffer(cfg)
    clf = ClassifierRole(cfg, spec)
    before = copy.deepcopy(clf.net)
    logits = before(buf.sample.reshape(-1, 2)).reshape(3, 16, 3)
    heads = [classifier_loss(torch.cat([logits[j, :, k] for j in range(3) if j != k]), logits[k, :, k]) for k in range(3)]
    expected_loss = float((sum(heads) / 3).detach())
    sum(heads).backward()
    assert clf.serve_all(buf, 0) == pytest.approx(expected_loss, rel=1e-6)
    for p_before, p_after in zip(before.parameters(), clf.net.parameters()):  # one SGD step on the sum
        assert torch.allclose(p_before - 0.1 * p_before.grad, p_after, atol=1e-6)
    assert buf.c_round.tolist() == [0, 0, 0] and torch.isfinite(buf.c_grad).all()


def test_batched_trains_ring8(tmp_path):
    res = train(TrainConfig(k=3, engine="batched", out=str(tmp_path / "b"), **SMALL))
    data = read_run_file(res.run_dir / "run.h5")
    assert res.rounds_completed == 30 and np.isfinite(data["loss/generator"]).all()
    assert np.isfinite(data["loss/classifier"]).all() and "time/discriminator/compute" in data
