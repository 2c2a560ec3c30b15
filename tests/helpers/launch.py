"""A launch of ``python -m sharedgan`` in a subprocess, and the small settings most tests share."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

FIXTURES = str(Path(__file__).parents[1] / "fixtures")
TINY = ["--k", "2", "--batch-size", "32", "--hidden", "16", "--eval-samples", "200", "--quiet"]



class Launch:
    """`python -m sharedgan launch ...` in a subprocess, with helpers to watch it."""

    def __init__(self, out: Path, *args: str, env: dict | None = None, resume: bool = False):
        self.out = Path(out)
        cmd = [sys.executable, "-m", "sharedgan", "launch", "--resume" if resume else "--out", str(out), *args]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([FIXTURES, os.environ.get("PYTHONPATH", "")]), **(env or {})}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                     start_new_session=True)  # its own group, as a job in a terminal

    def wait_for_log(self, text: str, timeout: float = 120.0) -> None:
        log = self.out / "logs" / "runner.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if log.exists() and text in log.read_text():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"launch exited early ({self.proc.returncode}): {self.proc.communicate()}")
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in {log} after {timeout} s")

    def pids(self) -> dict:
        return json.loads((self.out / "processes.json").read_text())

    def signal(self, name: str, sig: int) -> float:
        os.kill(self.proc.pid if name == "runner" else self.pids()[name], sig)
        return time.monotonic()

    def signal_group(self, sig: int) -> float:
        """A signal to every process of the job's group, as timeout, systemd or SLURM send it."""
        os.killpg(self.proc.pid, sig)
        return time.monotonic()

    def interrupt_group(self) -> float:
        """Ctrl-C as a terminal sends it: SIGINT to every process of the job's group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return time.monotonic()

    def finish(self, timeout: float = 60.0) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err
