"""The one object that owns every child process of a run (Sample Factory / torch.multiprocessing
.spawn style).

* Children start with the ``spawn`` method (never ``fork`` once torch has threads).
* A child dies with its parent (PR_SET_PDEATHSIG, plus a parent-pid watchdog in every wait),
  ignores SIGINT (Ctrl-C reaches the runner, which stops everyone in order), and writes its
  stdout, stderr and any traceback to its own log file.
* The runner waits on process sentinels and its ZeroMQ inbox in one poll. On the first failure it
  asks everyone to abort, waits a grace period, then SIGTERM, then SIGKILL, and joins them all.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from multiprocessing import resource_tracker
from multiprocessing.process import BaseProcess
from typing import Callable, Iterable

import torch
import torch.multiprocessing as mp
import zmq

PR_SET_PDEATHSIG = 1
RUN_ENV = "SHAREDGAN_RUN"  # marks every child of a run, so a leak check can find orphans


def describe_exit(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name} (exit code {code})"
        except ValueError:
            return f"was killed by signal {-code} (exit code {code})"
    return f"exited with code {code}"


class RoleFailed(RuntimeError):
    """A child process ended badly; names the role, how it ended, and where its log is."""

    def __init__(self, role: str, exitcode: int | None, log: str | None = None, detail: str = ""):
        self.role, self.exitcode, self.log = role, exitcode, log
        text = detail or f"{role} {describe_exit(exitcode)}"
        if log:
            text += f"; see {log}"
        super().__init__(text)


def prepare_child(log_path: str, parent_pid: int, threads: int) -> Callable[[], None]:
    """First thing a child does. Returns a watchdog that exits if the parent has gone."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # not Linux: the watchdog below still ends orphans
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(3)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True,
                        format="%(asctime)s %(processName)s %(levelname)s %(message)s")
    torch.set_num_threads(threads)

    def watchdog() -> None:
        if os.getppid() != parent_pid:
            os._exit(3)

    return watchdog


class ProcessGroup:
    def __init__(self, run_id: str, start_method: str = "spawn"):
        self.context = mp.get_context(start_method)
        self.run_id = run_id
        self.procs: dict[str, BaseProcess] = {}
        self.logs: dict[str, str] = {}
        self.exited: dict[str, int] = {}

    def spawn(self, name: str, target: Callable, args: tuple, log: str) -> BaseProcess:
        """Start ``name`` (again, if an earlier process of that name has exited and was reaped)."""
        if name in self.procs:
            if name not in self.exited:
                raise RuntimeError(f"{name} is still running")
            self.procs.pop(name).close()
            del self.exited[name]
        # multiprocessing starts its resource tracker at the first spawn; start it first, so the
        # interpreter-wide tracker never carries this run's marker
        resource_tracker.ensure_running()
        previous = os.environ.get(RUN_ENV)
        os.environ[RUN_ENV] = self.run_id  # inherited by the child, never by anyone else
        # A terminal's Ctrl-C reaches the whole process group; a child spends seconds importing
        # torch before prepare_child runs, so it must inherit an ignored SIGINT (kept across exec).
        main = threading.current_thread() is threading.main_thread()
        old_sigint = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            proc = self.context.Process(target=target, args=args, name=name, daemon=True)
            proc.start()
        finally:
            if main:
                signal.signal(signal.SIGINT, old_sigint)
            if previous is None:
                os.environ.pop(RUN_ENV, None)
            else:
                os.environ[RUN_ENV] = previous
        self.procs[name], self.logs[name] = proc, log
        return proc

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items()}

    def wait(self, sockets: Iterable[zmq.Socket], timeout: float) -> None:
        """Block until a socket is readable, a child exits, or ``timeout`` seconds pass."""
        poller = zmq.Poller()
        for sock in sockets:
            poller.register(sock, zmq.POLLIN)
        for name, proc in self.procs.items():
            if name not in self.exited:
                poller.register(proc.sentinel, zmq.POLLIN)
        poller.poll(int(timeout * 1000))

    def reap(self) -> list[tuple[str, int]]:
        """Children that exited since the last call, as (name, exit code)."""
        newly = []
        for name, proc in self.procs.items():
            if name not in self.exited and proc.exitcode is not None:
                proc.join()
                self.exited[name] = proc.exitcode
                newly.append((name, proc.exitcode))
        return newly

    def kill(self, name: str) -> None:
        """SIGKILL one child (a hung one); it is reaped like any other exit."""
        proc = self.procs[name]
        if proc.exitcode is None:
            proc.kill()

    def running(self) -> list[str]:
        return [n for n, p in self.procs.items() if n not in self.exited and p.exitcode is None]

    def _wait_all(self, deadline: float) -> None:
        while self.running() and time.monotonic() < deadline:
            self.wait((), max(0.0, min(0.05, deadline - time.monotonic())))

    def shutdown(self, grace: float = 2.0, ask: Callable[[], None] | None = None) -> None:
        """Stop every child: ``ask`` them (ABORT), wait ``grace``, SIGTERM, wait 1 s, SIGKILL."""
        if ask is not None and self.running():
            ask()
        self._wait_all(time.monotonic() + grace)
        for name in self.running():
            self.procs[name].terminate()
        self._wait_all(time.monotonic() + 1.0)
        for name in self.running():
            self.procs[name].kill()
        for proc in self.procs.values():
            proc.join()
        self.reap()
        for proc in self.procs.values():
            proc.close()
