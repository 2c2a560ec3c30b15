"""The asynchronous engine: its dispatcher, the replicas' parameter region, and whole runs."""
import shutil
import signal

import numpy as np
import pytest
import torch

from sharedgan import TrainConfig, resume, train
from sharedgan.engines.asynchronous.supervisor import Dispatcher
from sharedgan.errors import ConfigError
from sharedgan.runtime.buffer import ParameterRegion
from sharedgan.storage import checkpoint
from sharedgan.storage.runfile import read_run_file

pytestmark = pytest.mark.processes  # every test here starts processes (see pytest.ini)


# ---- the dispatcher: a slot never waits while a server is free ------------------------------------
def test_a_ready_slot_goes_to_a_free_server_at_once():
    d = Dispatcher(["discriminator", "discriminator-1"])
    assert d.submit(0, 5) == [("discriminator", [(0, 5)])]
    assert d.submit(1, 5) == [("discriminator-1", [(1, 5)])]  # the primary is busy, the replica is not
    assert d.submit(2, 5) == []  # both busy: it waits
    assert d.submit(3, 5) == []
    assert d.done("discriminator-1", 1) == [("discriminator-1", [(2, 5)])]  # first come, first served
    assert d.done("discriminator", 0) == [("discriminator", [(3, 5)])]
    assert not d.idle
    assert d.done("discriminator", 3) == [] and d.done("discriminator-1", 2) == []
    assert d.idle


def test_the_primary_is_preferred_when_several_are_free():
    d = Dispatcher(["classifier", "classifier-1", "classifier-2"])
    d.submit(0, 0), d.submit(1, 0)
    d.done("classifier", 0)
    d.done("classifier-1", 1)
    assert d.submit(2, 1) == [("classifier", [(2, 1)])]


def test_a_server_takes_up_to_max_batch_waiting_slots_in_one_step():
    d = Dispatcher(["discriminator"], max_batch=3)
    assert d.submit(0, 0) == [("discriminator", [(0, 0)])]
    for k in range(1, 6):
        assert d.submit(k, 0) == []
    assert d.done("discriminator", 0) == [("discriminator", [(1, 0), (2, 0), (3, 0)])]  # oldest first, at most 3
    assert d.done("discriminator", 2) == [] and d.done("discriminator", 1) == []  # busy until all 3 are served
    assert d.done("discriminator", 3) == [("discriminator", [(4, 0), (5, 0)])]


def test_waiting_slots_are_shared_out_over_the_free_servers():
    d = Dispatcher(["classifier", "classifier-1"], max_batch=8)
    d.submit(0, 0), d.submit(1, 0)
    for k in range(2, 6):
        d.submit(k, 0)
    d.done("classifier", 0)  # one free server, four waiting: it takes them all (up to max_batch)
    assert d.busy["classifier"] == [(2, 0), (3, 0), (4, 0), (5, 0)]
    d2 = Dispatcher(["classifier", "classifier-1"], max_batch=8)
    for k in range(4):
        d2.waiting.append((k, 0))
    assert d2._assign() == [("classifier", [(0, 0), (1, 0)]), ("classifier-1", [(2, 0), (3, 0)])]


def test_a_report_of_a_slot_a_server_was_not_given_is_an_error():
    with pytest.raises(RuntimeError, match="never given"):
        Dispatcher(["discriminator"]).done("discriminator", 0)


# ---- the parameter region -----------------------------------------------------------------------
def _net(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))


def test_hogwild_replicas_update_one_set_of_parameters():
    first, second = _net(0), _net(1)
    region = ParameterRegion.for_model(first, shared=False)
    region.bind(first)
    region.bind(second)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        if a.is_floating_point():
            assert torch.equal(a, b)
    before = first[0].weight.detach().clone()
    opt = torch.optim.SGD(second.parameters(), lr=0.1)
    second(torch.randn(8, 3)).sum().backward()
    opt.step()  # a step by one replica ...
    assert not torch.equal(first[0].weight, before)  # ... is what the other one sees
    assert torch.equal(first[0].weight, second[0].weight)
    second.train()(torch.randn(8, 3) + 5)  # batch-norm statistics are shared too
    assert torch.equal(first[1].running_mean, second[1].running_mean)


def test_copy_replicas_load_only_whole_new_publications():
    primary, replica = _net(0), _net(1)
    region = ParameterRegion.for_model(_net(2), shared=False)
    assert not region.pull(replica)  # nothing published yet (version 0): keep its own
    region.publish(primary)
    assert region.pull(replica)
    assert all(torch.equal(a, b) for a, b in zip(primary.parameters(), replica.parameters()))
    assert not region.pull(replica)  # nothing new
    with torch.no_grad():
        primary[0].weight.add_(1.0)
    region.publish(primary)
    region.version += 1  # as if the primary were half-way through its next copy
    kept = replica[0].weight.detach().clone()
    assert not region.pull(replica) and torch.equal(replica[0].weight, kept)
    region.version += 1
    assert region.pull(replica) and torch.equal(replica[0].weight, primary[0].weight)


def test_a_region_of_another_model_is_refused():
    region = ParameterRegion.for_model(torch.nn.Linear(3, 3), shared=False)
    with pytest.raises(ValueError, match="parameter region holds"):
        region.bind(_net(0))


# ---- whole runs ----------------------------------------------------------------------------------
def test_serve_batch_auto_serves_every_waiting_slot():
    assert TrainConfig(k=5, engine="async", serve_batch="auto").validate().serve_batch_size == 5
    assert TrainConfig(k=5, engine="async", serve_batch="4").validate().serve_batch == 4  # (the command line's text)
    for bad in (0, "0", "many", True, 2.5):
        with pytest.raises(ConfigError, match="--serve-batch must be an integer ≥ 1 or auto"):
            TrainConfig(k=5, engine="async", serve_batch=bad).validate()
    d = Dispatcher(["discriminator"], max_batch=TrainConfig(k=6, serve_batch="auto").validate().serve_batch_size)
    assert d.submit(0, 0) == [("discriminator", [(0, 0)])]
    assert [d.submit(k, 0) for k in range(1, 6)] == [[]] * 5
    assert d.done("discriminator", 0) == [("discriminator", [(k, 0) for k in range(1, 6)])]  # all five at once


BASE = dict(k=3, rounds=40, eval_every=20, eval_samples=300, batch_size=32, hidden=16, seed=4,
            checkpoint_every=10, engine="async")


@pytest.mark.parametrize("sync, serve_batch, negatives", [("copy", 1, 0), ("hogwild", "auto", 0),
                                                        ("hogwild", 2, 21)])  # C's negatives over the slots seen
def test_async_run_with_replicas_trains_checkpoints_and_records(tmp_path, leak_check, sync, serve_batch, negatives):
    result = train(TrainConfig(out=str(tmp_path / sync), d_replicas=2, c_replicas=2, replica_sync=sync, sync_every=2,
                               serve_batch=serve_batch, classifier_negatives=negatives, **BASE))
    assert result.rounds_completed == 40
    data = read_run_file(result.run_dir / "run.h5")
    for name in ("loss/discriminator", "loss/classifier", "loss/generator", "beta"):
        assert np.isfinite(data[name]).all(), name
    # D's and C's times add up over the replicas that served each round; generators do wait
    for role in ("discriminator", "classifier"):
        assert (data[f"time/{role}/compute"] > 0).all()
    assert (data["time/generator/wait"] > 0).any()
    assert list(data["eval/round"]) == [19, 39]
    # every checkpoint is a barrier: all roles saved the same round, and the replicas never write one
    ckpts = sorted((result.run_dir / "checkpoints").iterdir())
    assert [c.name for c in ckpts] == ["round-0000019", "round-0000029", "round-0000039"]
    for ckpt in ckpts:
        assert sorted(p.name for p in ckpt.glob("*.pt")) == sorted(f"{r}.pt" for r in TrainConfig(k=3).roles)
        rounds = {torch.load(p, weights_only=True)["round"] for p in ckpt.glob("*.pt")}
        assert rounds == {int(ckpt.name.split("-")[1])}
    served = data["attrs"]
    assert served["served/discriminator-1"] > 0 and served["served/classifier-1"] > 0
    assert served["served/discriminator"] + served["served/discriminator-1"] == 3 * 40


def test_an_async_checkpoint_resumes_in_every_engine(tmp_path):
    first = train(TrainConfig(out=str(tmp_path / "run"), **{**BASE, "rounds": 30}))
    for engine in ("async", "parallel", "sequential"):
        copy = tmp_path / engine
        shutil.copytree(first.run_dir, copy)
        shutil.rmtree(copy / "checkpoints" / "round-0000029")  # as if it had stopped after round 19
        resumed = resume(copy, {"engine": engine})
        assert resumed.rounds_completed == 30
        data = read_run_file(copy / "run.h5")
        assert np.isfinite(data["loss/generator"]).all() and data["attrs"]["engine"] == engine


def test_a_step_on_several_slots_scales_the_learning_rate_by_their_square_root():
    from sharedgan.engines.asynchronous.loops import step_lr_scale
    from sharedgan.roles.build import dataset_of, model_spec
    from sharedgan.roles.discriminator import DiscriminatorRole
    cfg = TrainConfig(k=4, lr_discriminator=1e-3, lr_decay="none").validate()
    assert step_lr_scale(cfg, 4) == 2.0 and step_lr_scale(cfg, 1) == 1.0
    assert step_lr_scale(TrainConfig(serve_lr_scaling="none"), 4) == 1.0
    disc = DiscriminatorRole(cfg, model_spec(cfg), dataset_of(cfg))
    disc._fake_logits = disc.net(torch.zeros(8, 2)).reshape(4, 2)  # as validate_slots leaves it, 4 slots of 2
    disc.update_slots([(k, 3) for k in range(4)], step_lr_scale(cfg, 4))
    assert disc.opt.param_groups[0]["lr"] == pytest.approx(2e-3)


def test_replicas_need_the_async_engine():
    with pytest.raises(ConfigError, match="need --engine async"):
        TrainConfig(engine="parallel", d_replicas=2).validate()
    with pytest.raises(ConfigError, match="respawn works with --engine parallel"):
        TrainConfig(engine="async", on_failure="respawn").validate()


def test_a_stop_at_a_checkpoint_barrier_ends_on_one_round_and_resumes(launch, leak_check):
    """SIGTERM reaches the runner exactly while it completes the checkpoint of round 19 (the
    barrier): the generators, some already past it, agree on one final round; the run resumes."""
    args = ["--k", "3", "--batch-size", "32", "--hidden", "16", "--eval-samples", "200", "--quiet", "--engine", "async",
            "--d-replicas", "2", "--serve-batch", "2", "--rounds", "60", "--checkpoint-every", "10"]
    job = launch(*args, env={"SHAREDGAN_FAULT": "runner:checkpoint-rename:19:SIGTERM"})
    code, _, err = job.finish(120)
    assert code == 143, err
    ckpt = checkpoint.latest(job.out)
    last = int(ckpt.name.split("-")[1])
    assert last >= 19
    assert {torch.load(p, weights_only=True)["round"] for p in ckpt.glob("*.pt")} == {last}
    assert read_run_file(job.out / "run.h5")["attrs"]["rounds_completed"] == last + 1
    again = launch(out=job.out, resume=True)
    code, _, err = again.finish(120)
    assert code == 0, err
    assert read_run_file(job.out / "run.h5")["attrs"]["rounds_completed"] == 60


def test_a_stop_while_generators_wait_on_evaluations_ends_cleanly(launch, leak_check):
    """Evaluating every round, a generator ahead waits for the others' evaluations when the stop
    comes: it must answer the stop from that wait, or the run cannot agree on a final round."""
    args = ["--k", "3", "--batch-size", "32", "--hidden", "16", "--eval-samples", "100", "--quiet", "--engine", "async",
            "--serve-batch", "2", "--rounds", "100000", "--eval-every", "1", "--checkpoint-every", "100000"]
    job = launch(*args)
    job.wait_for_log("training started")
    job.signal("runner", signal.SIGTERM)
    code, _, err = job.finish(60)
    assert code == 143, err
    ckpt = checkpoint.latest(job.out)
    assert len({torch.load(p, weights_only=True)["round"] for p in ckpt.glob("*.pt")}) == 1
