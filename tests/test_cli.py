"""The command line: bad input gets one line and exit code 2; sample and eval work on a real run."""

import h5py
import pytest

from helpers.cli import cli
from helpers.launch import TINY

pytestmark = pytest.mark.processes  # every test here starts processes (see pytest.ini)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    res = cli("launch", "--out", str(out), *TINY, "--rounds", "40", "--eval-every", "20", "--engine", "sequential")
    assert res.returncode == 0, res.stderr
    return out, res


def test_launch_writes_the_run_directory(finished_run):
    out, res = finished_run
    assert "done: 40 rounds" in res.stdout and "modes covered" in res.stdout
    for name in ("config.json", "run.h5", "samples.png", "curves.png", "evolution.png", "logs/runner.log"):
        assert (out / name).exists(), name
    with h5py.File(out / "run.h5") as f:
        assert f["loss/generator"].shape == (40, 2) and f["beta"].shape == (40, 2)
        assert f["loss/discriminator"].shape == f["loss/classifier"].shape == f["time/round"].shape == (40,)
        assert list(f["eval/round"][()]) == [19, 39]
        assert f.attrs["status"] == "complete" and f.attrs["schema_version"] == 2
        assert f.attrs["version_torch"] and f.attrs["host"]


def test_config_reruns_the_same_training(finished_run, tmp_path):
    out, _ = finished_run
    res = cli("launch", "--config", str(out / "config.json"), "--out", str(tmp_path / "again"), "--quiet")
    assert res.returncode == 0, res.stderr
    with h5py.File(out / "run.h5") as a, h5py.File(tmp_path / "again" / "run.h5") as b:
        assert (a["loss/generator"][()] == b["loss/generator"][()]).all()


def test_sample_writes_samples_and_generators(finished_run, tmp_path):
    out, _ = finished_run
    target = tmp_path / "s.h5"
    res = cli("sample", str(out), "--n", "300", "--out", str(target))
    assert res.returncode == 0, res.stderr
    with h5py.File(target) as f:
        assert f["samples"].shape == (300, 2) and f["generator"].shape == (300,)
        assert set(f["generator"][()].tolist()) == {0, 1}
    again = cli("sample", str(out), "--n", "300", "--out", str(target))
    assert again.returncode == 2 and "exists" in again.stderr


def test_eval_prints_the_mode_table(finished_run):
    out, _ = finished_run
    res = cli("eval", str(out), "--n", "500")
    assert res.returncode == 0, res.stderr
    assert "modes covered" in res.stdout and "generator × mode" in res.stdout
    assert "where the time goes" in res.stdout and "discriminator" in res.stdout.split("where the time goes")[1]


def test_help_explains_every_option():
    res = cli("launch", "--help")
    assert res.returncode == 0
    for flag in ("--k", "--dataset", "--engine", "--rounds", "--batch-size", "--lr", "--beta-schedule", "--threshold",
                 "--seed", "--out", "--device", "--force", "--config"):
        assert flag in res.stdout, flag


def test_factory_returning_no_module_fails_clearly(tmp_path):
    res = cli("launch", "--out", str(tmp_path / "r"), *TINY, "--rounds", "2", "--engine", "sequential",
                  "--classifier-factory", "user_models:not_a_module")
    assert res.returncode == 2 and "not a torch.nn.Module" in res.stderr
    assert not (tmp_path / "r").exists()


def test_existing_run_is_refused_without_force(tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    res = cli("launch", "--out", str(out), *TINY, "--rounds", "2")
    assert res.returncode == 2 and "--force" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    forced = cli("launch", "--out", str(out), *TINY, "--rounds", "2", "--engine", "sequential", "--force")
    assert forced.returncode == 0, forced.stderr
    assert (out / "notes.txt").read_text() == "mine"  # --force replaces the run, not the user's files


def test_sample_from_a_non_run(tmp_path):
    res = cli("sample", str(tmp_path), "--out", str(tmp_path / "x.h5"))
    assert res.returncode == 2 and "not a sharedgan run" in res.stderr
