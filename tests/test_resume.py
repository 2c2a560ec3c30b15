"""Checkpoint and resume: a resumed run equals the uninterrupted one bit for bit, whatever
stopped it — including a role killed at a named critical point — and nothing is left behind."""
import shutil
import signal
import time

import pytest

from helpers.launch import TINY
from helpers.leaks import alive
from helpers.runs import assert_same_run, cut_back_to
from sharedgan import TrainConfig, resume, train
from sharedgan.storage import checkpoint
from sharedgan.storage.runfile import read_run_file

pytestmark = pytest.mark.processes  # every test here starts processes (see pytest.ini)

BASE = dict(k=3, rounds=60, batch_size=32, hidden=16, eval_samples=200, eval_every=20, checkpoint_every=20,
            beta_schedule="combined", seed=11)  # combined: β reads every generator's last loss, which must resume too
ARGS = TINY + ["--k", "3", "--rounds", "60", "--eval-every", "20", "--checkpoint-every", "20",
               "--beta-schedule", "combined", "--seed", "11"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run every resumed one is compared with."""
    return train(TrainConfig(engine="sequential", out=str(tmp_path_factory.mktemp("ref") / "run"), **BASE)).run_dir


@pytest.mark.parametrize("first, then", [("sequential", "sequential"), ("parallel", "parallel"),
                                         ("sequential", "parallel")])
def test_resumed_equals_uninterrupted_bit_for_bit(reference, tmp_path, leak_check, first, then):
    run_dir = tmp_path / "run"
    if first == "sequential":
        shutil.copytree(reference, run_dir)
    else:
        train(TrainConfig(engine=first, out=str(run_dir), **BASE))
    cut_back_to(run_dir, 19)
    result = resume(run_dir, {"engine": then})
    assert result.status == "complete" and result.rounds_completed == 60
    assert_same_run(reference, run_dir, TrainConfig(**BASE).roles)
    events = read_run_file(run_dir / "run.h5")["events/what"]
    assert events == ["resumed after round 19 (the latest intact checkpoint)"]


FAULTS = [  # (process, point, round, signal): each is killed there, the run ends, --resume finishes it
    ("generator-1", "slot-write", 25, "SIGKILL"),
    ("discriminator", "validation-write", 30, "SIGTERM"),
    ("classifier", "checkpoint-write", 39, "SIGKILL"),
    ("runner", "checkpoint-rename", 39, "SIGKILL"),
]


@pytest.mark.parametrize("process, point, round_index, sig", FAULTS)
def test_killed_at_a_critical_point_then_resumed(reference, launch, leak_check, process, point, round_index, sig):
    job = launch(*ARGS, env={"SHAREDGAN_FAULT": f"{process}:{point}:{round_index}:{sig}"})
    children, wanted = [], len(TrainConfig(**BASE).roles) + 1
    while job.proc.poll() is None:  # every process's pid, for the killed-runner check below
        if job.out.joinpath("processes.json").exists() and len(job.pids()) == wanted:
            children = [pid for name, pid in job.pids().items() if name != "runner"]
            break
        time.sleep(0.05)
    code, _, err = job.finish(120)
    ended_at = time.monotonic()
    if process == "runner":
        assert code == -signal.SIGKILL
        while any(alive(p) for p in children) and time.monotonic() - ended_at < 5.0:
            time.sleep(0.05)
        assert not any(alive(p) for p in children), "children outlived the killed runner by 5 s"
    else:
        assert code == 1, err
        assert f"{process} was killed by {sig}" in err and "Traceback" not in err
        assert f"resume from round-0000019 with: sharedgan launch --resume {job.out}" in err
    latest = checkpoint.latest(job.out)
    assert latest is not None and latest.name == "round-0000019"
    for role in TrainConfig(**BASE).roles:
        checkpoint.load_role(latest, role)  # the last checkpoint loads
    again = launch("--quiet", out=job.out, resume=True)
    code, out, err = again.finish(120)
    assert code == 0, err
    assert "done: 60 rounds" in out
    assert_same_run(reference, job.out, TrainConfig(**BASE).roles)
    assert not list((job.out / "checkpoints").glob("*.partial"))


def test_a_damaged_checkpoint_is_passed_over(reference, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    cut_back_to(run_dir, 39)
    damaged = run_dir / "checkpoints" / "round-0000039" / "generator-0.pt"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    skipped = []
    assert checkpoint.latest(run_dir, skipped).name == "round-0000019"
    assert "does not match its checksum" in skipped[0]
    result = resume(run_dir)
    assert result.rounds_completed == 60
    assert_same_run(reference, run_dir, TrainConfig(**BASE).roles)


def test_resume_refuses_a_running_run(launch, leak_check, tmp_path):
    job = launch(*TINY, "--rounds", "100000", "--eval-every", "100000", "--checkpoint-every", "50")
    job.wait_for_log("training started")
    for extra in (["--resume", str(job.out)], ["--out", str(job.out), "--force"]):
        from helpers.cli import cli as run_cli
        res = run_cli("launch", *extra, "--quiet")
        assert res.returncode == 2 and "still going" in res.stderr, res.stderr
    job.signal("runner", signal.SIGINT)
    assert job.finish()[0] == 130


def test_historical_averaging_resumes_bit_for_bit(tmp_path):
    """The running mean of past parameters is part of every role's checkpoint."""
    cfg = dict(BASE, rounds=40, historical_averaging=0.05, engine="sequential")
    whole = train(TrainConfig(out=str(tmp_path / "whole"), **cfg)).run_dir
    shutil.copytree(whole, tmp_path / "cut")
    cut_back_to(tmp_path / "cut", 19)
    assert resume(tmp_path / "cut").rounds_completed == 40
    assert_same_run(whole, tmp_path / "cut", TrainConfig(**BASE).roles)
    assert int(checkpoint.load_role(checkpoint.latest(whole),
                                    "discriminator")["history_count"]) == 1 + 40 * 3  # K steps a round
