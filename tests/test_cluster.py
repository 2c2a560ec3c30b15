"""--transport distributed: the roles as the ranks of a torchrun job (sharedgan.cluster)."""
import os
import signal
import socket
import subprocess
import sys
import time

import h5py
import pytest

from helpers.cli import cli_here, one_line
from helpers.runs import assert_same_run, cut_back_to
from sharedgan import TrainConfig, train
from sharedgan.cluster.torchrun import place_roles
from sharedgan.errors import ConfigError
from sharedgan.runtime.buffer import fields_of
from sharedgan.runtime.transport import traffic

SMALL = ["--k", "2", "--rounds", "30", "--threads", "1", "--eval-every", "10", "--eval-samples", "100",
         "--checkpoint-every", "10", "--seed", "3", "--beta-schedule", "combined"]
SMALL_CONFIG = dict(k=2, rounds=30, threads=1, eval_every=10, eval_samples=100, checkpoint_every=10, seed=3,
                    beta_schedule="combined")  # (the loss-gap β reads every generator's stats, which C passes on)


def torchrun(*args, nproc: int, node: tuple[int, int, int] | None = None, env=None, background=False,
             timeout=300, restarts: int = 0):
    """``torchrun ... -m sharedgan launch --transport distributed ARGS``; ``node``: (node rank,
    nodes, rendezvous port) of a multi-node job on 127.0.0.1, else --standalone."""
    where = ["--standalone"] if node is None else [
        f"--nnodes={node[1]}", f"--node-rank={node[0]}", "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{node[2]}", "--rdzv-id=sharedgan-test"]
    cmd = [sys.executable, "-m", "torch.distributed.run", *where, f"--nproc-per-node={nproc}",
           f"--max-restarts={restarts}",
           "-m", "sharedgan", "launch", "--transport", "distributed", "--quiet", *args]
    # SHAREDGAN_RUN marks the ranks, so the leak check finds any that outlive the test
    env = {**os.environ, "SHAREDGAN_RUN": "cluster-test", "OMP_NUM_THREADS": "1", **(env or {})}
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def _wait_for_training(out, job, timeout: float = 120.0) -> None:
    """Until every role said READY and the runner began round 0 (a role stopped before that is a
    slow start, which --startup-timeout judges, not its heartbeats)."""
    deadline = time.monotonic() + timeout
    log = out / "logs" / "runner.log"
    while not (log.exists() and "training started" in log.read_text()):
        assert time.monotonic() < deadline and job.poll() is None
        time.sleep(0.2)
    time.sleep(1.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- without processes -------------------------------------------------------------------------
def test_roles_take_ranks_in_the_documented_order():
    processes = TrainConfig(k=3).processes
    one_node = [(0, r, ()) for r in range(6)]
    assert place_roles(processes, one_node) == {"runner": 0, "discriminator": 1, "classifier": 2,
                                                "generator-0": 3, "generator-1": 4, "generator-2": 5}


def test_roles_here_places_roles_on_their_node_and_the_rest_fill_in():
    processes = TrainConfig(k=2).processes
    # node 0: ranks 0–1 (runner, and D by default); node 1: ranks 2–4, asking for the generators
    ranks = [(0, 0, ()), (0, 1, ()), (1, 0, ("generator-1", "generator-0")), (1, 1, ("generator-1", "generator-0")),
             (1, 2, ("generator-1", "generator-0"))]
    assert place_roles(processes, ranks) == {"runner": 0, "generator-1": 2, "generator-0": 3,
                                             "discriminator": 1, "classifier": 4}


@pytest.mark.parametrize("ranks, says", [
    ([(0, r, ()) for r in range(4)], "start 5 processes in all"),
    ([(0, r, ("generator-7",)) for r in range(5)], "not a role of this run"),
    ([(0, 0, ()), (1, 0, ("classifier",)), (1, 1, ("classifier",)), (2, 0, ("classifier",)), (2, 1, ("classifier",))],
     "places classifier twice"),
    ([(0, 0, ()), (0, 1, ()), (0, 2, ())] + [(1, r, ("generator-0", "generator-1", "classifier")) for r in range(2)],
     "gives node 1 3 roles but it runs 2"),
])
def test_a_placement_that_cannot_work_is_refused(ranks, says):
    with pytest.raises(ConfigError, match=says):
        place_roles(TrainConfig(k=2).processes, ranks)


def test_the_bytes_a_round_moves_follow_from_the_layout():
    config = TrainConfig(k=2, batch_size=16, eval_samples=10).validate()
    per_round, per_eval = traffic(fields_of(config, (2,)), 2)
    sample = 16 * 2 * 4 + 8 + 3 * 2 * 8  # the batch, its round stamp, the generator's stats of two rounds
    d = 16 * 4 + 16 * 2 * 4 + 8 + 8  # d(x), ∂/∂x, the term, the stamp
    c = d + 2 * 3 * 2 * 8  # the same, and every generator's stats
    assert per_round == 2 * (2 * sample + d + c)
    assert per_eval == 2 * 10 * 2 * 4


@pytest.mark.parametrize("slot_precision", ["fp32", "bf16"])
def test_what_a_signal_carries_arrives_byte_for_byte_whatever_its_offsets(slot_precision):
    """A SAMPLE_READY packs the batch, then its int64 round stamp: after 25 × 2 bf16 values that
    stamp sits at byte 100, which no int64 view can start at; unpacking copies bytes instead."""
    import torch

    from sharedgan.runtime.buffer import SlotBuffer
    from sharedgan.runtime.messages import Kind, Role
    from sharedgan.runtime.transport import pack, payload, unpack
    fields = fields_of(TrainConfig(k=3, batch_size=25, slot_precision=slot_precision).validate(), (2,))
    here, there = (SlotBuffer.allocate(fields, 3, shared=False) for _ in range(2))
    torch.manual_seed(0)
    here.sample.copy_(torch.randn(here.sample.shape))
    here.sample_round[1], here.gen_loss[1, 0], here.gen_round[1] = 7, 0.25, torch.tensor([6, 5])
    regions = payload(Kind.SAMPLE_READY, Role.GENERATOR, 1)
    unpack(there, regions, pack(here, regions))
    assert torch.equal(there.sample[1], here.sample[1]) and not there.sample[0].any()  # slot 1 only
    assert int(there.sample_round[1]) == 7 and float(there.gen_loss[1, 0]) == 0.25
    assert there.gen_round[1].tolist() == [6, 5]


@pytest.mark.parametrize("setting, says", [
    (dict(engine="sequential"), "runs --engine parallel"),
    (dict(engine="async"), "runs --engine parallel"),
    (dict(on_failure="respawn"), "torchrun --max-restarts"),
    (dict(shared_trunk=True), "not built for --transport distributed"),
    (dict(device="cuda"), "use --device cpu"),
])
def test_what_the_distributed_transport_cannot_do_is_refused(setting, says):
    with pytest.raises(ConfigError, match=says):
        TrainConfig(transport="distributed", **setting).validate()


def test_outside_torchrun_it_says_how_to_start(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    one_line(cli_here(capsys, "launch", "--transport", "distributed", "--out", str(tmp_path / "r")), 2,
             "runs under torchrun")
    assert not (tmp_path / "r").exists()


# ---- torchrun jobs -----------------------------------------------------------------------------
@pytest.mark.processes
def test_distributed_run_equals_the_sequential_engine_bit_for_bit(tmp_path, leak_check):
    job = torchrun(*SMALL, "--out", str(tmp_path / "dist"), nproc=5)
    assert job.returncode == 0, job.stdout + job.stderr
    seq = train(TrainConfig(engine="sequential", out=str(tmp_path / "seq"), **SMALL_CONFIG))
    roles = TrainConfig(k=2).roles
    assert_same_run(seq.run_dir, tmp_path / "dist", roles)
    with h5py.File(tmp_path / "dist" / "run.h5") as f:
        sent = sum(int(v) for name, v in f.attrs.items() if name.startswith("sent_bytes/"))
        assert {n.split("/")[1] for n in f.attrs if n.startswith("sent_bytes/")} == set(roles)
        evals = len(f["eval/round"])
    config = TrainConfig(**SMALL_CONFIG).validate()
    per_round, per_eval = traffic(fields_of(config, (2,)), 2)
    assert sent == 30 * per_round + evals * per_eval  # what moved is the layout's arithmetic, nothing more


@pytest.mark.processes
def test_a_killed_generator_restarts_the_group_which_resumes_bit_exact(tmp_path, leak_check):
    job = torchrun(*SMALL, "--out", str(tmp_path / "dist"), nproc=5,
                   env={"SHAREDGAN_FAULT": "generator-1:slot-write:25"}, timeout=400, restarts=1)
    assert job.returncode == 0, job.stdout + job.stderr
    seq = train(TrainConfig(engine="sequential", out=str(tmp_path / "seq"), **SMALL_CONFIG))
    assert_same_run(seq.run_dir, tmp_path / "dist", TrainConfig(k=2).roles)
    with h5py.File(tmp_path / "dist" / "run.h5") as f:
        events = [w.decode() for w in f["events/what"][()]]
    assert any("torchrun restarted the group" in e and "round-0000019" in e for e in events), events


@pytest.mark.processes
def test_a_world_of_the_wrong_size_is_refused_on_every_rank(tmp_path, leak_check):
    job = torchrun(*SMALL, "--out", str(tmp_path / "dist"), nproc=4)
    assert job.returncode != 0
    said = [line for line in (job.stdout + job.stderr).splitlines() if line.startswith("error: ")]
    assert len(said) == 4 and all("start 5 processes in all" in line for line in said), job.stderr
    assert not (tmp_path / "dist").exists()


@pytest.mark.processes
def test_an_occupied_run_directory_is_refused_on_every_rank_and_kept(tmp_path, leak_check):
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "mine.txt").write_text("keep me")
    job = torchrun(*SMALL, "--out", str(tmp_path / "dist"), nproc=5)
    said = [line for line in (job.stdout + job.stderr).splitlines() if line.startswith("error: ")]
    assert job.returncode != 0 and len(said) == 5 and len(set(said)) == 1 and "--force" in said[0], said
    assert [p.name for p in (tmp_path / "dist").iterdir()] == ["mine.txt"]


@pytest.mark.processes
def test_two_nodes_on_one_machine_equal_the_sequential_engine(tmp_path, leak_check):
    port = _free_port()
    out = str(tmp_path / "dist")
    head = torchrun(*SMALL, "--out", out, nproc=2, node=(0, 2, port), background=True)
    other = torchrun(*SMALL, "--out", out, "--roles-here", "generator-0,generator-1,classifier", nproc=3,
                     node=(1, 2, port), background=True)
    outputs = [p.communicate(timeout=300)[0] for p in (head, other)]
    assert head.returncode == other.returncode == 0, outputs
    seq = train(TrainConfig(engine="sequential", out=str(tmp_path / "seq"), **SMALL_CONFIG))
    assert_same_run(seq.run_dir, tmp_path / "dist", TrainConfig(k=2).roles)


@pytest.mark.processes
@pytest.mark.slow
def test_without_restarts_a_killed_generator_ends_the_run_naming_it(tmp_path, leak_check):
    job = torchrun(*SMALL, "--out", str(tmp_path / "dist"), nproc=5,
                   env={"SHAREDGAN_FAULT": "generator-1:slot-write:25"}, timeout=400)
    assert job.returncode == 1
    assert "failed: generator-1 went silent" in job.stderr, job.stderr


@pytest.mark.processes
@pytest.mark.slow
def test_a_stopped_role_is_caught_by_its_heartbeats(tmp_path, leak_check):
    out = tmp_path / "dist"
    job = torchrun("--k", "2", "--rounds", "1000000", "--threads", "1", "--heartbeat-timeout", "3", "--out", str(out),
                   nproc=5, background=True)
    _wait_for_training(out, job)
    pid = int((out / "logs" / "classifier.log").read_text().split("pid ")[1].split()[0])
    os.kill(pid, signal.SIGSTOP)
    said = job.communicate(timeout=200)[0]
    assert job.returncode == 1
    assert "failed: classifier stopped making progress: no heartbeat" in said, said


@pytest.mark.processes
@pytest.mark.slow
def test_ctrl_c_to_the_job_stops_it_with_a_final_checkpoint(tmp_path, leak_check):
    out = tmp_path / "dist"
    job = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=5", "-m", "sharedgan",
         "launch", "--transport", "distributed", "--quiet", "--k", "2", "--rounds", "1000000", "--threads", "1",
         "--checkpoint-every", "1000000", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "SHAREDGAN_RUN": "cluster-test", "OMP_NUM_THREADS": "1"})
    _wait_for_training(out, job)
    os.killpg(job.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: every process of the job gets it
    said = job.communicate(timeout=120)[0]
    assert "stopped: interrupted by SIGINT after" in said, said
    from sharedgan.storage import checkpoint
    assert checkpoint.latest(out) is not None


@pytest.mark.processes
@pytest.mark.slow
def test_resume_by_hand_goes_on_bit_exact(tmp_path, leak_check):
    out = tmp_path / "dist"
    assert torchrun(*SMALL, "--out", str(out), nproc=5).returncode == 0
    cut_back_to(out, 19)
    job = torchrun("--resume", str(out), nproc=5)
    assert job.returncode == 0, job.stdout + job.stderr
    seq = train(TrainConfig(engine="sequential", out=str(tmp_path / "seq"), **SMALL_CONFIG))
    assert_same_run(seq.run_dir, out, TrainConfig(k=2).roles)


@pytest.mark.processes
@pytest.mark.slow
def test_hgans_teacher_is_one_more_rank(tmp_path, leak_check):
    job = torchrun(*SMALL, "--teacher-weight", "1", "--out", str(tmp_path / "dist"), nproc=6)
    assert job.returncode == 0, job.stdout + job.stderr
    seq = train(TrainConfig(engine="sequential", out=str(tmp_path / "seq"), teacher_weight=1.0, **SMALL_CONFIG))
    assert_same_run(seq.run_dir, tmp_path / "dist", TrainConfig(k=2, teacher_weight=1.0).roles)
