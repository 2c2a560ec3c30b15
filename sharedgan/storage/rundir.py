"""The run directory: refuses to clobber a previous run, holds config, logs, run file, pictures."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

from sharedgan.errors import ConfigError
from sharedgan.storage.files import write_atomic

# What a run writes; with --force only these are replaced, never other files of the user's.
ARTIFACTS = ("config.json", "run.h5", "processes.json", "logs", "checkpoints", "samples.png", "curves.png",
             "evolution.png", "grids", "tensorboard")
FOLDERS = ("logs", "checkpoints", "grids", "tensorboard")  # what a run writes inside, file by file


def default_out() -> str:
    return os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))


class RunLock:
    """An exclusive flock on the run directory for the life of a run, so a second launch with
    --force or --resume cannot touch a run that is still training. The kernel drops it when the
    holder dies, however it dies; nothing is written to disk."""

    def __init__(self, run_dir: Path):
        self.fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise ConfigError(f"{run_dir} is in use by a sharedgan run that is still going; wait for it, "
                              "or stop it first") from None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def prepare(config, force: bool = False, resume: bool = False) -> tuple[Path, RunLock]:
    """Create (or, with ``force``, reuse; with ``resume``, continue) the run directory, lock it, and
    write ``config.json``. ``config``: the run's TrainConfig (its ``out`` and ``to_json`` only: the
    run directory knows nothing of what a setting means)."""
    run_dir = Path(config.out or default_out())
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} exists and is not a directory; choose another --out")
    lock = RunLock(run_dir) if run_dir.is_dir() else None
    try:
        _prepare(run_dir, force, resume)
        lock = lock or RunLock(run_dir)
        config.out = str(run_dir)
        write_atomic(run_dir / "config.json", config.to_json() + "\n")
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return run_dir, lock


def check_inside(run_dir: Path) -> None:
    """Everything sharedgan writes or deletes for a run lies inside it: refuse a run directory in
    which a path it writes is a symbolic link (a run from elsewhere could point its logs or its
    checkpoints anywhere). Checked whole before anything is written or deleted."""
    def refuse(path: Path):
        raise ConfigError(f"{path} is a symbolic link; sharedgan writes and deletes only inside the run directory: "
                          "remove the link, or choose another --out")
    for name in ARTIFACTS:
        if (run_dir / name).is_symlink():
            refuse(run_dir / name)
    for name in FOLDERS:
        folder = run_dir / name
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.is_symlink():
                refuse(path)
            if path.is_dir():  # a checkpoint's files
                for inner in path.iterdir():
                    if inner.is_symlink():
                        refuse(inner)


def _prepare(run_dir: Path, force: bool, resume: bool) -> None:
    if run_dir.is_dir():
        check_inside(run_dir)
    if run_dir.is_dir() and any(run_dir.iterdir()) and not resume:
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
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=run_dir)  # (exclusive: never through a link)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"cannot write to --out {run_dir}: {exc.strerror}; choose a writable directory") from None


def log_path(run_dir: Path, role: str) -> Path:
    return Path(run_dir) / "logs" / f"{role}.log"

