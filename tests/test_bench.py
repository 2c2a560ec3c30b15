"""sharedgan bench: the table, bench.h5 and the plot from a tiny study, and its arithmetic."""
import math

import h5py
import numpy as np
import pytest

from helpers.cli import cli
from sharedgan.bench import BenchPlan, cells, engine_settings, round_limit, time_shares, time_to_quality

pytestmark = pytest.mark.processes  # every test here starts processes (see pytest.ini)


def test_time_to_quality_is_the_first_evaluation_on_target():
    run = {"attrs": {}, "eval/mode_histogram": np.zeros((4, 8)), "eval/train_seconds": np.array([1.0, 2.0, 3.0, 4.0]),
           "eval/modes_covered": np.array([6, 8, 8, 8]), "eval/high_quality": np.array([0.95, 0.85, 0.92, 0.97])}
    assert time_to_quality(run, 0.9) == 3.0  # round 2 covers all 8 but at 85%; round 3 is the first on target
    assert math.isnan(time_to_quality(run, 0.99))  # never reached
    assert math.isnan(time_to_quality({"attrs": {}}, 0.9))  # an image run without realness: no target


def test_the_image_target_wants_every_generator_varied_and_real():
    run = {"attrs": {"realness_real_precision": 0.9}, "eval/train_seconds": np.array([1.0, 2.0, 3.0, 4.0]),
           "eval/spread": np.array([[0.9, 0.1], [0.9, 0.8], [0.9, 0.8], [0.9, 0.8]]),  # 1st: one collapsed
           "eval/precision": np.array([[0.9, 0.9], [0.9, 0.3], [0.9, 0.8], [0.9, 0.8]]),  # 2nd: one unreal
           "eval/mixture_precision": np.array([0.9, 0.6, 0.80, 0.85])}
    assert time_to_quality(run, 0.9) == 4.0  # 3rd: mixture 0.80 < 0.9 × 0.9; the 4th is on target
    assert time_to_quality(run, 0.85) == 3.0


def test_shares_and_speedups():
    run = {"time/generator/copy": np.array([[0.01, 0.01]]), "time/generator/wait": np.array([[0.1, 0.3]]),
           "time/discriminator/copy": np.array([0.03]), "time/discriminator/wait": np.array([0.0])}
    copy, wait = time_shares(run, 1.0)
    assert copy == pytest.approx(0.02) and wait == pytest.approx(0.1)
    plan = BenchPlan([2], ["sequential", "parallel"], cores=2)
    row = dict(k=2, startup_seconds=1.0, time_to_quality=float("nan"), copy_share=0.0, wait_share=0.0, peak_rss_mb=1.0,
               peak_cuda_mb=float("nan"), limit_seconds_per_round=0.1)
    rows = {"sequential": [dict(row, seconds_per_round=0.4, updates_per_second=5.0, threads=2, processes=1)],
            "parallel": [dict(row, seconds_per_round=0.25, updates_per_second=8.0, threads=1, processes=4)]}
    seq, par = cells(plan, rows)
    assert seq["speedup"] == 1.0 and par["speedup"] == pytest.approx(1.6)
    assert par["efficiency"] == pytest.approx(0.8)  # 1.6 over the 2 cores it can use
    assert math.isnan(seq["efficiency"])  # the baseline is not parallel work
    assert plan.threads("parallel", 8) == 1 and plan.threads("sequential", 8) == 2


def test_engines_carry_their_settings():
    assert engine_settings("async:b8:r2:hogwild") == {"engine": "async", "serve_batch": 8, "d_replicas": 2,
                                                       "c_replicas": 2, "replica_sync": "hogwild"}
    assert engine_settings("async:bauto") == {"engine": "async", "serve_batch": "auto"}
    assert engine_settings("async:d3:copy:s5") == {"engine": "async", "d_replicas": 3,
                                                   "replica_sync": "copy", "sync_every": 5}
    assert engine_settings("parallel:pin") == {"engine": "parallel", "pin_roles": True}
    assert engine_settings("parallel") == {"engine": "parallel"}
    plan = BenchPlan([8], ["sequential", "async:r2"], cores=24, in_process_threads=1)
    assert plan.processes("async:r2", 8) == 12 and plan.threads("async:r2", 8) == 2  # 24 cores over 12 processes
    assert plan.processes("parallel", 8) == 10 and plan.threads("sequential", 8) == 1


def test_a_tiny_study_end_to_end(tmp_path, leak_check):
    out = tmp_path / "b"
    res = cli("bench", "--k", "2", "--rounds", "20", "--repeats", "1", "--eval-every", "10", "--out", str(out),
              "--engines", "sequential,parallel,async:b2")
    assert res.returncode == 0, res.stderr
    table = res.stdout
    assert ("| sequential | 2 |" in table and "| parallel | 2 |" in table and "| async:b2 | 2 |" in table
            and "cores" in table)
    with h5py.File(out / "bench.h5") as f:
        for engine in ("sequential", "parallel"):
            assert f[f"{engine}/seconds_per_round"].shape == (1,) and f[f"{engine}/seconds_per_round"][0] > 0
        assert f.attrs["rounds"] == 20
        # every process's peak memory, summed: the parallel engine's 5 processes hold more than 1
        assert f["parallel/peak_rss_mb"][0] > f["sequential/peak_rss_mb"][0] > 50
        assert np.isnan(f["parallel/peak_cuda_mb"][0])  # (no GPU: nothing to sum; tests/test_cuda.py has the rest)
        assert all(f[f"{e}/limit_seconds_per_round"][0] > 0 for e in ("sequential", "parallel", "async:b2"))
    assert (out / "bench.png").stat().st_size > 0 and (out / "bench.md").read_text().strip() in table
    again = cli("bench", "--k", "2", "--rounds", "20", "--out", str(out))
    assert again.returncode == 2 and "holds an earlier study" in again.stderr


@pytest.mark.parametrize("args, says", [
    (["--k", "2,x"], "--k must be a comma-separated list"),
    (["--engines", "parallel"], "--engines must include sequential"),
    (["--engines", "sequential,warp"], "--engines: 'warp' unknown"),
    (["--engines", "sequential,async:z3"], "'z3' is not a setting"),
    (["--engines", "sequential,parallel:b4"], "'parallel:b4': parallel takes one setting, pin"),
    (["--k", "0"], "--k must be an integer in [1, 1024]"),
])
def test_bad_bench_options(tmp_path, args, says):
    res = cli("bench", *args, "--out", str(tmp_path / "b"))
    assert res.returncode == 2 and says in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "b").exists()


def test_ctrl_c_during_a_study_keeps_what_it_measured(tmp_path, leak_check):
    """Ctrl-C (to the whole group, as a terminal sends it) while the second run trains: exit 130,
    one line, no traceback, and the first run's figures written."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from helpers.launch import FIXTURES
    out = tmp_path / "b"
    proc = subprocess.Popen([sys.executable, "-m", "sharedgan", "bench", "--k", "2", "--rounds", "100000",
                             "--repeats", "1", "--eval-every", "100000", "--out", str(out),
                             "--engines", "sequential,parallel", "--in-process-threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": FIXTURES})
    try:
        # the first run (sequential, 100000 rounds) is too long to finish: interrupt it once it trains
        deadline = time.monotonic() + 120
        logs = out / "runs" / "sequential-k2-r0" / "logs" / "runner.log"
        while time.monotonic() < deadline and not (logs.exists() and "training started" in logs.read_text()):
            time.sleep(0.1)
        time.sleep(1.0)  # rounds take milliseconds: some hundreds are done
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted by SIGINT with 1 of 2 runs measured" in stderr, stderr
    with h5py.File(out / "bench.h5") as f:  # the interrupted run, as far as it went
        assert f["sequential/seconds_per_round"].shape == (1,) and f["sequential/seconds_per_round"][0] > 0
        assert f["parallel/seconds_per_round"].shape == (0,)
    assert "| sequential | 2 |" in (out / "bench.md").read_text() and "| sequential | 2 |" in stdout


def test_the_limit_is_the_work_over_the_cores_or_the_busiest_process():
    R = 3  # rounds; round 0 (warm-up) is left out
    run = {"time/generator/compute": np.full((R, 4), 0.01), "time/generator/copy": np.zeros((R, 4)),
           "time/discriminator/compute": np.full(R, 0.02), "time/discriminator/copy": np.full(R, 0.01),
           "time/classifier/compute": np.full(R, 0.09), "time/classifier/copy": np.full(R, 0.01),
           "config": {"d_replicas": 1, "c_replicas": 1}}
    assert round_limit(run, "sequential", 2) == pytest.approx(0.04 + 0.03 + 0.10)  # one process: all the work
    assert round_limit(run, "parallel", 2) == pytest.approx(0.10)  # C is busier than 0.17 over 2 cores
    assert round_limit(run, "parallel", 1) == pytest.approx(0.17)  # one core: the work
    run["config"] = {"d_replicas": 1, "c_replicas": 2}  # C's work over its 2 processes: the cores bound
    assert round_limit(run, "async:r2", 2) == pytest.approx(0.085)
    run["config"] = {"shared_trunk": True}  # C in D's process: that one process does both
    assert round_limit(run, "parallel", 4) == pytest.approx(0.13)
