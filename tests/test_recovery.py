"""What a run does when a role goes wrong without dying cleanly: it hangs, it diverges, or it
crashes under --on-failure respawn."""
import math
import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.launch import TINY
from sharedgan.storage import checkpoint
from sharedgan.storage.runfile import read_run_file

pytestmark = pytest.mark.processes  # every test here starts processes (see pytest.ini)


def test_a_stopped_role_is_detected_by_heartbeat(launch, leak_check):
    job = launch(*TINY, "--rounds", "100000", "--eval-every", "100000", "--heartbeat-timeout", "2")
    job.wait_for_log("training started")
    stopped_at = job.signal("generator-1", signal.SIGSTOP)
    code, _, err = job.finish(60)
    took = time.monotonic() - stopped_at
    assert code == 1, err
    assert "generator-1 stopped making progress: no heartbeat for" in err and "it was killed" in err
    assert took < 2 + 5.0, f"a hang took {took:.1f} s to end the run"


@pytest.mark.parametrize("engine", ["sequential", "parallel"])
def test_divergence_stops_the_run_and_keeps_the_last_good_checkpoint(launch, leak_check, engine):
    # plain SGD at learning rate 10 blows a generator up within a few rounds: a real divergence
    job = launch(*TINY, "--rounds", "400", "--checkpoint-every", "1", "--optimizer-generator", "sgd",
                 "--lr-generator", "10", "--engine", engine)
    code, _, err = job.finish(120)
    assert code == 1, err
    line = err.strip().splitlines()[-1]
    assert re.search(r"generator-\d diverged at round \d+: (NaN or Inf in its sample|its sample is not finite)",
                     line), line
    assert "Traceback" not in err
    diverged_at = int(line.split("diverged at round ")[1].split(":")[0])
    latest = checkpoint.latest(job.out)
    # the round before it, or (parallel) one earlier if a peer had not saved that one when the run stopped
    assert latest is not None and diverged_at - 2 <= checkpoint.round_of(latest) < diverged_at
    assert f"the last good checkpoint is {latest}" in line
    for role in ("generator-0", "generator-1", "discriminator", "classifier"):
        for value in checkpoint.load_role(latest, role)["model"].values():
            assert torch.isfinite(value).all(), f"{latest}/{role} holds NaN or Inf"
    assert read_run_file(job.out / "run.h5")["attrs"]["status"] == "failed"


RESPAWN = TINY + ["--k", "3", "--rounds", "160", "--eval-every", "40", "--checkpoint-every", "50",
                  "--on-failure", "respawn"]


@pytest.mark.parametrize("process, point", [("generator-1", "slot-write"),
                                            pytest.param("discriminator", "validation-write", marks=pytest.mark.slow),
                                            ("classifier", "checkpoint-write")])
def test_respawn_brings_a_killed_role_back(launch, leak_check, process, point):
    job = launch(*RESPAWN, env={"SHAREDGAN_FAULT": f"{process}:{point}:{99 if point == 'checkpoint-write' else 75}"})
    code, out, err = job.finish(180)
    assert code == 0, err
    assert "done: 160 rounds" in out
    data = read_run_file(job.out / "run.h5")
    assert data["attrs"]["status"] == "complete"
    (what,) = data["events/what"]
    assert data["events/role"] == [process]
    assert f"{process} was killed by SIGKILL" in what and "restarted from checkpoint round-0000049" in what
    assert np.isfinite(data["loss/discriminator"][-50:]).all() and np.isfinite(data["loss/generator"][-50:]).all()
    log = (job.out / "logs" / f"{process}.log").read_text()
    assert log.count(" started, pid ") == 2  # the same log, both lives


def test_respawn_gives_up_after_max_restarts(launch, leak_check):
    job = launch(*RESPAWN, "--max-restarts", "0", env={"SHAREDGAN_FAULT": "generator-0:slot-write:10"})
    code, _, err = job.finish(120)
    assert code == 1
    assert "generator-0 was killed by SIGKILL" in err and "gave up after 0 restarts" in err


def test_respawn_of_a_hung_role(launch, leak_check):
    job = launch(*RESPAWN[:-6], "--rounds", "100000", "--eval-every", "100000", "--checkpoint-every", "20",
                 "--on-failure", "respawn", "--heartbeat-timeout", "2")
    job.wait_for_log("training started")
    job.signal("classifier", signal.SIGSTOP)
    job.wait_for_log("classifier back; every role restarts at round", timeout=30)
    job.signal("runner", signal.SIGINT)
    code, _, err = job.finish(60)
    assert code == 130, err
    data = read_run_file(job.out / "run.h5")
    assert data["events/role"] == ["classifier"] and "stopped making progress" in data["events/what"][0]
    assert math.isfinite(data["loss/classifier"][-1])


def _fork_server(job) -> int:
    """The pid of the runner's fork server: its child that runs multiprocessing.forkserver (and no
    role: roles a lost server left behind are the runner's children now, with the server's cmdline)."""
    runner, roles = job.proc.pid, set(job.pids().values())
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in roles:
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[1]) == runner and b"forkserver" in cmdline:
                return int(entry.name)
    raise AssertionError(f"no fork server among the children of {runner}")


def _latest_round(out) -> int:
    latest = checkpoint.latest(out)
    return -1 if latest is None else checkpoint.round_of(latest)


# (the stop policy's case is the same mechanism without the respawn: behind -m slow, to keep CI short)
@pytest.mark.parametrize("policy", ["respawn", pytest.param("stop", marks=pytest.mark.slow)])
def test_a_killed_fork_server_takes_no_role_down(launch, leak_check, policy):
    job = launch(*RESPAWN[:-6], "--rounds", "100000", "--eval-every", "100000", "--checkpoint-every", "20",
                 "--on-failure", policy)
    job.wait_for_log("training started")
    server = _fork_server(job)
    before = _latest_round(job.out)
    os.kill(server, signal.SIGKILL)  # as the OOM killer would
    job.wait_for_log(f"the fork server (pid {server}) was killed by SIGKILL", timeout=30)
    roles = ["fork-server"]
    if policy == "respawn":  # a role lost afterwards comes back through a new server
        job.signal("generator-1", signal.SIGKILL)
        job.wait_for_log("generator-1 back; every role restarts at round", timeout=60)
        roles.append("generator-1")
        assert _fork_server(job) != server
    deadline = time.monotonic() + 60  # two checkpoints on: rounds trained after the server's death
    while _latest_round(job.out) < before + 40 and time.monotonic() < deadline and job.proc.poll() is None:
        time.sleep(0.05)
    assert _latest_round(job.out) >= before + 40
    job.signal("runner", signal.SIGINT)
    code, _, err = job.finish(60)
    assert code == 130, err
    data = read_run_file(job.out / "run.h5")
    assert data["events/role"] == roles and "the roles went on" in data["events/what"][0]
    assert data["attrs"]["status"] == "interrupted"
