"""The runner owns every process: a dead child, Ctrl-C, SIGTERM, a killed runner — and nothing left."""
import signal
import time

import pytest
import torch

from helpers.launch import TINY
from helpers.leaks import alive
from sharedgan.storage import checkpoint
from sharedgan.storage.runfile import read_run_file

pytestmark = pytest.mark.processes  # every test here starts processes (see pytest.ini)

LONG = TINY + ["--k", "3", "--rounds", "100000", "--eval-every", "100000", "--checkpoint-every", "100000"]


@pytest.mark.parametrize("engine, victim", [("parallel", "generator-1"), ("async", "classifier-1")])
def test_killed_child_ends_the_run_naming_it(launch, leak_check, engine, victim):
    job = launch(*LONG, "--engine", engine, *(["--c-replicas", "2"] if engine == "async" else []))
    job.wait_for_log("training started")
    killed_at = job.signal(victim, signal.SIGKILL)
    code, _, err = job.finish()
    elapsed = time.monotonic() - killed_at
    assert code == 1
    assert victim in err and "SIGKILL" in err and f"logs/{victim}.log" in err
    assert len(err.strip().splitlines()[-1]) < 300 and "Traceback" not in err
    assert elapsed < 5.0, f"the run took {elapsed:.1f} s to end after the kill"
    assert read_run_file(job.out / "run.h5")["attrs"]["status"] == "failed"


def test_role_traceback_lands_in_its_log(launch, leak_check, tmp_path):
    job = launch(*TINY, "--rounds", "50", "--discriminator-factory", "user_models:exploding_discriminator")
    code, _, err = job.finish(120)
    assert code == 1 and "discriminator exited with code 1" in err
    log = (job.out / "logs" / "discriminator.log").read_text()
    assert "Traceback" in log and "planted failure" in log


@pytest.mark.parametrize("sig, code, engine", [(signal.SIGINT, 130, "parallel"), (signal.SIGTERM, 143, "parallel"),
                                               (signal.SIGINT, 130, "sequential"), (signal.SIGTERM, 143, "async")])
def test_interrupt_stops_everyone_and_leaves_a_checkpoint(launch, leak_check, sig, code, engine):
    job = launch(*LONG, "--engine", engine, *(["--d-replicas", "2"] if engine == "async" else []))
    job.wait_for_log("training started")
    sent_at = job.signal("runner", sig)
    got, _, err = job.finish()
    assert time.monotonic() - sent_at < 10.0
    assert got == code, err
    ckpt = checkpoint.latest(job.out)
    assert ckpt is not None, "no complete checkpoint after the stop"
    roles = ["generator-0", "generator-1", "generator-2", "discriminator", "classifier"]
    rounds = set()
    for role in roles:
        state = torch.load(ckpt / f"{role}.pt", weights_only=True)
        rounds.add(state["round"])
        assert state["model"] and state["optimizer"]["state"]
    assert len(rounds) == 1, f"roles stopped after different rounds: {rounds}"
    data = read_run_file(job.out / "run.h5")
    assert data["attrs"]["status"] == "interrupted"
    assert data["attrs"]["rounds_completed"] == rounds.pop() + 1


def test_ctrl_c_to_the_whole_group_during_start_up_stops_at_once(launch, leak_check):
    job = launch(*LONG, "--generator-factory", "user_models:slow_to_build_generator")
    job.wait_for_log("spawned")  # the generators are still building their models
    sent_at = job.interrupt_group()
    code, _, err = job.finish()
    assert code == 130 and "before any round" in err
    assert time.monotonic() - sent_at < 10.0


def test_children_die_with_a_killed_runner(launch, leak_check):
    job = launch(*TINY, "--k", "3", "--rounds", "100000", "--eval-every", "100000", "--checkpoint-every", "3")
    job.wait_for_log("training started")
    children = [pid for name, pid in job.pids().items() if name != "runner"]
    time.sleep(0.5)  # (checkpoints every 3 rounds are being written now)
    killed_wall = time.time()
    killed_at = job.signal("runner", signal.SIGKILL)
    job.finish()
    while time.monotonic() < killed_at + 10.0 and any(alive(p) for p in children):
        time.sleep(0.02)
    gone_after = time.monotonic() - killed_at
    assert gone_after < 2.0, f"children outlived their runner by {gone_after:.1f} s"
    # an orphan writes no checkpoint: what a .partial holds was written while the runner lived
    # (a write under way at the kill may end a moment later)
    late = [p for p in (job.out / "checkpoints").rglob("*") if p.is_file() and p.stat().st_mtime > killed_wall + 0.3]
    assert not late, f"orphans wrote {late} after their runner died"


def assert_stopped_with_a_checkpoint(job, code: int, err: str) -> None:
    assert code == 0 or code > 128, err
    ckpt = checkpoint.latest(job.out)
    assert ckpt is not None, f"no complete checkpoint after the stop: {err}"
    data = read_run_file(job.out / "run.h5")
    assert data["attrs"]["status"] == "interrupted", err
    assert data["attrs"]["rounds_completed"] == checkpoint.round_of(ckpt) + 1
    assert "without a final checkpoint" not in (job.out / "logs" / "runner.log").read_text()


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_stop_signal_to_the_whole_group_ends_like_one_to_the_runner(launch, leak_check, sig, code):
    """timeout, systemd and SLURM send SIGTERM to the job's group, a closed terminal SIGHUP: every
    child and the fork server get it too, and must leave the stop to the runner."""
    job = launch(*LONG)
    job.wait_for_log("training started")
    sent_at = job.signal_group(sig)
    got, _, err = job.finish()
    assert time.monotonic() - sent_at < 10.0
    assert got == code, err
    assert_stopped_with_a_checkpoint(job, got, err)


def test_two_sigterms_at_once_are_one_request(launch, leak_check):
    """A nested timeout signals the runner and its group within a moment: that is not the
    impatient second Ctrl-C, and must not cost the final checkpoint."""
    job = launch(*LONG)
    job.wait_for_log("training started")
    job.signal("runner", signal.SIGTERM)
    job.wait_for_log("stop requested")  # the first is handled: the second is a second handler call
    job.signal_group(signal.SIGTERM)
    got, _, err = job.finish()
    assert got == 143, err
    assert_stopped_with_a_checkpoint(job, got, err)


def test_a_deliberate_second_ctrl_c_stops_at_once_and_keeps_the_last_checkpoint(launch, leak_check):
    job = launch(*TINY, "--k", "3", "--rounds", "100000", "--eval-every", "100000", "--checkpoint-every", "1",
                 "--discriminator-factory", "user_models:slow_discriminator")
    job.wait_for_log("training started")
    while checkpoint.latest(job.out) is None:
        time.sleep(0.05)
    job.signal("runner", signal.SIGINT)
    time.sleep(1.5)  # a second request, not the same one twice (the final round takes seconds here)
    job.signal("runner", signal.SIGINT)
    got, _, err = job.finish()
    assert got == 130, err
    assert "second interrupt" in (job.out / "logs" / "runner.log").read_text()
    assert checkpoint.latest(job.out) is not None  # the last periodic one stays


def test_ctrl_c_to_the_whole_group_while_training(launch, leak_check):
    job = launch(*LONG)
    job.wait_for_log("training started")
    sent_at = job.interrupt_group()
    code, _, err = job.finish()
    assert code == 130, err
    assert time.monotonic() - sent_at < 10.0 and checkpoint.latest(job.out) is not None


def test_child_ignores_sigint(launch, leak_check):
    job = launch(*TINY, "--rounds", "400", "--eval-every", "400")
    job.wait_for_log("training started")
    job.signal("generator-0", signal.SIGINT)
    code, out, err = job.finish(180)
    assert code == 0, err
    assert "done: 400 rounds" in out


def test_a_start_up_that_hangs_fails_after_the_timeout_the_user_set(launch, leak_check):
    job = launch(*LONG, "--generator-factory", "user_models:slow_to_build_generator", "--startup-timeout", "4")
    started = time.monotonic()
    code, _, err = job.finish(120)
    assert code == 1 and "did not start within 4 s" in err, err
    assert time.monotonic() - started < 40


def test_only_a_deliberate_second_ctrl_c_is_a_hard_stop(monkeypatch):
    """The rule itself, without processes: the first signal asks for a clean stop; SIGTERMs and
    SIGHUPs never harden it; a second SIGINT does only after DELIBERATE seconds."""
    from sharedgan.runtime import interrupts
    clock = [100.0]
    monkeypatch.setattr(interrupts.time, "monotonic", lambda: clock[0])
    stops = []
    s = interrupts.StopSignals()
    s.on_stop = lambda: stops.append(1)
    s._handle(signal.SIGTERM, None)
    s._handle(signal.SIGTERM, None)
    s._handle(signal.SIGHUP, None)
    clock[0] += 10
    s._handle(signal.SIGTERM, None)
    assert s.requested and not s.hard and s.signum == signal.SIGTERM and stops == [1]
    s = interrupts.StopSignals()
    s._handle(signal.SIGINT, None)
    clock[0] += interrupts.DELIBERATE / 2
    s._handle(signal.SIGINT, None)  # the same Ctrl-C twice (a terminal and a nested handler)
    assert not s.hard
    clock[0] += interrupts.DELIBERATE
    s._handle(signal.SIGINT, None)
    assert s.hard
