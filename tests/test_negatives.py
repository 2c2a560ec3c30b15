"""--classifier-negatives: the draw, head k's loss on it, and that C's forward pass shrinks to m + N."""
import copy

import pytest
import torch

from sharedgan import TrainConfig
from sharedgan.errors import ConfigError
from sharedgan.math.losses import classifier_loss, classifier_step_terms
from sharedgan.math.negatives import negative_rows
from sharedgan.roles.build import model_spec
from sharedgan.roles.classifier import ClassifierRole
from sharedgan.runtime.buffer import SlotBuffer, slot_fields


def _per_slot(rows: torch.Tensor, batch: int) -> dict[int, torch.Tensor]:
    return {int(j): rows[rows // batch == j] % batch for j in (rows // batch).unique()}


def test_the_draw_is_even_without_replacement_and_named_by_head_and_round():
    flat = negative_rows(7, 0, 5, [1, 2, 3], 8, 7)  # 7 over 3 slots: 2, 2 and 3
    assert flat.dtype == torch.int64 and torch.equal(flat, flat.unique())  # sorted, no row twice
    rows = _per_slot(flat, 8)
    assert sorted(len(r) for r in rows.values()) == [2, 2, 3] and set(rows) == {1, 2, 3}
    assert all(int(r.min()) >= 0 and int(r.max()) < 8 for r in rows.values())
    assert torch.equal(flat, negative_rows(7, 0, 5, [1, 2, 3], 8, 7))  # the stream is the state: any engine draws these
    for other in (negative_rows(7, 0, 6, [1, 2, 3], 8, 7), negative_rows(7, 1, 5, [0, 2, 3], 8, 7)):
        assert not torch.equal(flat, other)
    few = _per_slot(negative_rows(7, 0, 5, [1, 2, 3, 4, 5], 8, 2), 8)  # fewer than the slots: 2 give one each
    assert sorted(len(r) for r in few.values()) == [1, 1] and len(few) == 2
    assert torch.equal(negative_rows(7, 0, 5, [1, 2], 8, 16), torch.arange(8, 24))  # every row of slots 1 and 2
    assert len(negative_rows(7, 0, 5, [], 8, 16)) == 0
    with pytest.raises(ValueError):
        negative_rows(7, 0, 5, [1], 8, 0)


def test_every_row_of_a_slot_is_drawn_alike():
    # 3 of 8 rows from each of 2 slots, over 4000 rounds: each row ~1500 times (binomial sd ~31)
    counts = torch.zeros(16)
    for r in range(4000):
        counts += torch.bincount(negative_rows(1, 0, r, [1, 2], 8, 6) - 8, minlength=16)
    assert float(counts.min()) > 1350 and float(counts.max()) < 1650


def test_head_k_contrasts_slot_k_with_exactly_its_negatives():
    logits = torch.randn(3, 4, 3, generator=torch.Generator().manual_seed(1))
    flat = logits.reshape(12, 3)
    negatives = {0: (torch.arange(4), torch.tensor([4, 7, 10]))}  # slot 1's rows 0 and 3, slot 2's row 2
    (term,) = classifier_step_terms("ovr", flat, [0], torch.ones(3, dtype=torch.bool), negatives)
    by_hand = classifier_loss(torch.stack([logits[1, 0, 0], logits[1, 3, 0], logits[2, 2, 0]]), logits[0, :, 0])
    assert float(term) == pytest.approx(float(by_hand), rel=1e-7)
    (ova,) = classifier_step_terms("one-vs-all", flat, [0], torch.ones(3, dtype=torch.bool), negatives)
    assert float(ova) == pytest.approx(float(classifier_loss(-torch.stack(
        [logits[1, 0, 0], logits[1, 3, 0], logits[2, 2, 0]]), -logits[0, :, 0])), rel=1e-7)
    every = {0: (torch.arange(4), torch.arange(4, 12))}  # every row: Algorithm 1's term
    (all_rows,) = classifier_step_terms("ovr", flat, [0], torch.ones(3, dtype=torch.bool), every)
    (plain,) = classifier_step_terms("ovr", logits, [0], torch.ones(3, dtype=torch.bool))
    assert float(all_rows) == pytest.approx(float(plain), rel=1e-7)
    with pytest.raises(ValueError, match="ovr and one-vs-all"):
        classifier_step_terms("softmax", flat, [0], torch.ones(3, dtype=torch.bool), negatives)


def _role_and_buffer(negatives):
    cfg = TrainConfig(k=4, batch_size=16, classifier_negatives=negatives, optimizer_classifier="sgd",
                      lr_classifier=0.1, lr_decay="none").validate()
    spec = model_spec(cfg)
    buf = SlotBuffer.allocate(slot_fields(cfg.batch_size, spec.sample_shape, 4), cfg.k, shared=False)
    buf.sample.copy_(torch.randn(buf.sample.shape, generator=torch.Generator().manual_seed(0)))
    buf.sample_round.fill_(3)
    torch.manual_seed(0)
    return ClassifierRole(cfg, spec), buf


def test_c_runs_m_plus_n_samples_through_its_net_and_steps_on_the_drawn_rows():
    clf, buf = _role_and_buffer(negatives=6)
    before = copy.deepcopy(clf.net)
    seen = []
    clf.net.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    loss = clf.serve_slot(buf, 2, 3)
    assert seen == [16 + 6, 16]  # the step's pass (slot 2 and 6 negatives), then scoring slot 2
    rows = negative_rows(clf.config.seed, 2, 3, [0, 1, 3], 16, 6)
    logits = before(buf.sample.reshape(-1, 2))
    expected = classifier_loss(logits[rows, 2], logits[32:48, 2])
    assert loss == pytest.approx(float(expected.detach()), rel=1e-6)
    expected.backward()
    for p_before, p_after in zip(before.parameters(), clf.net.parameters()):
        assert torch.allclose(p_before - 0.1 * p_before.grad, p_after, atol=1e-6)


def test_every_row_as_negatives_is_algorithm_1_bit_for_bit():
    (a, buf_a), (b, buf_b) = _role_and_buffer(0), _role_and_buffer(3 * 16)
    for k in range(4):
        assert a.serve_slot(buf_a, k, 3) == b.serve_slot(buf_b, k, 3)
    assert torch.equal(buf_a.c_grad, buf_b.c_grad) and torch.equal(buf_a.c_score, buf_b.c_score)


def test_the_batched_step_draws_per_head_and_scores_every_slot():
    clf, buf = _role_and_buffer(negatives=6)
    seen = []
    clf.net.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    clf.serve_all(buf, 3)  # every slot is served: all their rows go through C once
    assert seen == [4 * 16, 4 * 16] and buf.c_round.tolist() == [3, 3, 3, 3] and torch.isfinite(buf.c_grad).all()


@pytest.mark.parametrize("bad, message", [(dict(classifier_negatives=-1), "N ≥ 0"),
                                          (dict(classifier_negatives=True), "N ≥ 0"),
                                          (dict(classifier_negatives=8, classifier="pairwise"), "ovr or one-vs-all")])
def test_bad_negatives_are_refused(bad, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**bad).validate()
