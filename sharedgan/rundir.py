"""The run directory: refuses to clobber a previous run, holds config, logs, run file, pictures."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from .config import ConfigError, TrainConfig

# What a run writes; with --force only these are replaced, never other files of the user's.
ARTIFACTS = ("config.json", "run.h5", "processes.json", "logs", "checkpoints", "samples.png", "curves.png",
             "evolution.png")


def default_out() -> str:
    return os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))


def prepare(config: TrainConfig, force: bool = False) -> Path:
    """Create (or, with ``force``, reuse) the run directory and write ``config.json``."""
    run_dir = Path(config.out or default_out())
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} exists and is not a directory; choose another --out")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if not force:
            raise ConfigError(f"--out {run_dir} is not empty; choose another --out, or pass --force to replace its run")
        for name in ARTIFACTS:
            target = run_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    try:
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        (run_dir / "checkpoints").mkdir(exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to --out {run_dir}: {exc.strerror}; choose a writable directory") from None
    config.out = str(run_dir)
    (run_dir / "config.json").write_text(config.to_json() + "\n")
    return run_dir


def log_path(run_dir: Path, role: str) -> Path:
    return Path(run_dir) / "logs" / f"{role}.log"
