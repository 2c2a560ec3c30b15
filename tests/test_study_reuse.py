"""A study reuses a finished run only when that run trained what the study would train today, the
data-dependent defaults included: after the image defaults changed, a run of the old ones is
trained again, not reported under today's name."""
import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np

from sharedgan import TrainConfig

SCRIPT = Path(__file__).parent.parent / "examples" / "studies" / "real_digits.py"


def study():
    spec = importlib.util.spec_from_file_location("real_digits", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_of(tmp_path, name: str, drop=(), **settings) -> Path:
    run_dir = tmp_path / name
    run_dir.mkdir()
    config = TrainConfig(dataset=str(tmp_path / "digits.npz"), k=2, width=4, out=str(run_dir), **settings)
    written = dataclasses.asdict(config.validate(reading=True))  # a config.json, less the settings it predates
    (run_dir / "config.json").write_text(json.dumps({key: v for key, v in written.items() if key not in drop}))
    return run_dir


def test_a_run_is_reused_only_if_it_trained_todays_settings(tmp_path):
    np.savez(tmp_path / "digits.npz", images=np.zeros((4, 32, 32, 1), np.uint8), labels=np.zeros(4, np.int64))
    asked = TrainConfig(dataset=str(tmp_path / "digits.npz"), k=2, width=4, engine="sequential", threads=1)
    today = dataclasses.replace(asked).validate(reading=True)
    same = study()._trained_as_asked
    assert same(run_of(tmp_path, "today"), today)  # how it ran (engine, threads) does not matter
    assert not same(run_of(tmp_path, "papers", r1=0.0, generator="standard"), today)
    assert not same(run_of(tmp_path, "older", drop=("r1", "generator"), r1=0.0, generator="standard"), today)
    papers = dataclasses.replace(asked, r1=0.0, generator="standard").validate(reading=True)
    assert same(tmp_path / "older", papers)  # a config.json from before R1 existed trained without it
    assert not same(tmp_path / "missing", today)


def test_a_run_of_a_study_with_a_relative_runs_folder_is_recognised(tmp_path, monkeypatch):
    """A launch records the data set's absolute path; the study asks with --runs runs/digits."""
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "digits.npz", images=np.zeros((4, 32, 32, 1), np.uint8), labels=np.zeros(4, np.int64))
    module = study()
    run_dir = run_of(tmp_path, "run", engine="sequential", seed=3, rounds=40, eval_every=5)  # absolute, as recorded
    asked = module.study_config(Path("digits.npz"), 2, 3, 40, 4, {}, Path("run"))
    assert module._trained_as_asked(run_dir, asked.validate(reading=True))
