"""The command line in a subprocess, or in this process, and the shape of a one-line error."""
import os
import subprocess
import sys

import pytest

from helpers.launch import FIXTURES


def cli(*args, preexec=None, cwd=None):
    """``python -m sharedgan ARGS`` in a subprocess (the user-model fixtures on its path)."""
    env = {**os.environ, "PYTHONPATH": FIXTURES}
    return subprocess.run([sys.executable, "-m", "sharedgan", *args], capture_output=True, text=True, env=env,
                          timeout=300, preexec_fn=preexec, cwd=cwd)


def cli_here(capsys, *args):
    """The console entry point in this process: bad options fail before anything is spawned, so
    this is the same code path as the subprocess, without a torch import per case."""
    from sharedgan.cli import main
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, exit_.value.code, captured.out, captured.err)


def one_line(res, code: int, says: str) -> None:
    assert res.returncode == code, res.stderr
    assert says in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr, res.stderr
