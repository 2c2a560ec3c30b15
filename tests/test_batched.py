"""The batched baseline: where it is Algorithm 1 (K = 1, and each slot's error from one pass),
and that it trains."""
import copy

import numpy as np
import pytest
import torch

from sharedgan import TrainConfig, train
from sharedgan.math.losses import classifier_loss
from sharedgan.roles.build import dataset_of, model_spec
from sharedgan.roles.classifier import ClassifierRole
from sharedgan.roles.discriminator import DiscriminatorRole
from sharedgan.runtime.buffer import SlotBuffer, slot_fields
from sharedgan.storage.runfile import read_run_file

pytestmark = pytest.mark.processes  # every test here starts processes (see pytest.ini)

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
    heads = [classifier_loss(torch.cat([logits[j, :, k] for j in range(3) if j != k]), logits[k, :, k])
             for k in range(3)]
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


def test_a_subset_of_slots_of_different_rounds_is_scored_and_stamped_alone():
    """The async engine's step on the slots waiting: only those are scored and stamped, each with its round."""
    cfg = TrainConfig(k=4, batch_size=16).validate()
    buf, spec = _buffer(cfg)
    buf.sample_round.copy_(torch.tensor([5, 6, 5, 7]))
    disc = DiscriminatorRole(cfg, spec, dataset_of(cfg))
    disc.validate_slots(buf, [(3, 7), (1, 6)])
    together = buf.d_grad[[3, 1]].clone()
    assert buf.d_round.tolist() == [-1, 6, -1, 7] and float(buf.d_grad[0].abs().sum()) == 0.0
    disc.validate(buf, 3, 7)
    disc.validate(buf, 1, 6)
    assert torch.allclose(buf.d_grad[[3, 1]], together, atol=1e-7)
    with pytest.raises(RuntimeError, match="slot 0 holds round 5, expected 6"):
        disc.validate_slots(buf, [(0, 6)])


def test_async_classifier_contrasts_only_the_batches_it_has_seen():
    from sharedgan.roles.classifier import SampleCache
    cfg = TrainConfig(k=3, batch_size=16, optimizer_classifier="sgd", lr_classifier=0.1, lr_decay="none").validate()
    buf, spec = _buffer(cfg)
    clf = ClassifierRole(cfg, spec)
    cache = SampleCache(3, tuple(buf.sample.shape[1:]))
    cache.take(buf, 0, 0)  # slot 0 seen earlier; slot 1 never
    before = copy.deepcopy(clf.net)
    logits = before(buf.sample.reshape(-1, 2)).reshape(3, 16, 3)
    expected = classifier_loss(logits[0, :, 2], logits[2, :, 2])  # head 2: slot 0 "real", slot 2 "fake"
    assert clf.serve_slots(buf, [(2, 0)], cache) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert buf.c_round.tolist() == [-1, -1, 0] and cache.seen.tolist() == [True, False, True]
    first = ClassifierRole(cfg, spec)  # a process's very first slot: nothing to contrast, no step, still scored
    untouched = copy.deepcopy(first.net.state_dict())
    assert first.serve_slots(buf, [(1, 0)], SampleCache(3, tuple(buf.sample.shape[1:]))) == 0.0
    assert all(torch.equal(untouched[n], t) for n, t in first.net.state_dict().items())
    assert int(buf.c_round[1]) == 0
