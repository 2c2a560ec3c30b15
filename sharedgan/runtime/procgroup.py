"""The one object that owns every child process of a run (Sample Factory / torch.multiprocessing
.spawn style).

* Children start with the ``forkserver`` method (never ``fork`` once torch has threads): one
  server process imports torch and the role code once, then forks every child from that state, so
  K + 2 children do not each spend seconds importing torch. The server is this run's: it is
  stopped when the run's processes are gone (and dies by itself if the runner does).
* No child depends on the fork server once it runs: the server may die (the OOM killer may pick
  it as well as anyone) and the roles go on. The runner is their subreaper, so a lost server's
  children become its own; it watches every child through a pidfd (not the server's status pipe,
  which a dead server closes), and the next child it starts gets a new server.
* A child dies with the run (a watchdog in every wait sees the runner's pidfd the moment it exits;
  where there are no pidfds, PR_SET_PDEATHSIG on the server, which exits when the runner's end of
  its pipe closes), ignores the signals that stop a job — SIGINT, SIGTERM,
  SIGHUP, sent by a terminal, ``timeout``, systemd or SLURM to the whole process group — so that
  they reach the runner alone, which stops everyone in order with a final checkpoint (the fork
  server holds them blocked, so it too outlives them until the runner is done), and writes its
  stdout, stderr and any traceback to its own log file.
* The runner waits on the children's pidfds and its ZeroMQ inbox in one poll. On the first failure
  it asks everyone to abort, waits a grace period, then SIGKILLs what is left, and reaps them all.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import select
import shutil
import signal
import sys
import time
from multiprocessing import forkserver, resource_tracker
from multiprocessing import process as mp_process
from multiprocessing.process import BaseProcess
from typing import Callable, Iterable

import torch
import torch.multiprocessing as mp
import zmq

from sharedgan.errors import describe_exit
from sharedgan.runtime.messages import private_folder

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 1, 36, 37
# the signals that stop a job: the runner's (the fork server holds them blocked; a child ignores
# SIGINT, and takes SIGTERM or SIGHUP as meant for itself only if the runner is not stopping)
JOB_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
OWN_GRACE = 2.0  # seconds a child waits to learn whether a SIGTERM/SIGHUP was the job's or its own


RUN_ENV = "SHAREDGAN_RUN"  # marks every child of a run, so a leak check can find orphans


def output_to(log_path: str) -> None:
    """This process's stdout, stderr (a traceback too) and log records go to its own log file."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)  # never through a link
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True,
                        format="%(asctime)s %(processName)s %(levelname)s %(message)s")


def prepare_child(log_path: str, runner_pid: int, threads: int,
                  stopping: Callable[[], bool] | None = None) -> Callable[[], None]:
    """First thing a child does. Returns a watchdog that exits if the runner (or the fork server
    between them) has gone, and that carries out a SIGTERM or SIGHUP meant for this child alone.

    A SIGTERM that reaches the whole group (``timeout``, systemd, SLURM) is the runner's to act
    on: it stops the run with a final checkpoint, which this child must help write. One sent to
    this child alone must still end it. The child cannot tell them apart when they arrive, so it
    notes the signal and waits up to :data:`OWN_GRACE` s for ``stopping()`` (the runner's stop
    flag in shared memory, set within a poll slice of the runner's own signal): if the runner is
    stopping, the signal was the job's; if not, the child dies of it, as its sender meant."""
    runner = _pidfd(runner_pid)  # readable the moment the runner exits, however it dies
    if runner is None:  # no pidfds: die with the fork server, which dies with the runner (a lost
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # server then takes the roles with it)
    # A forked child inherits the fork server's "alive" pipe, which keeps the server up while any
    # holder lives; let go of it, so that a dead runner takes the server down, and the server (on
    # its way out, see _server_exit) every child.
    alive_fd = getattr(forkserver._forkserver, "_forkserver_alive_fd", None)
    if alive_fd is not None:
        os.close(alive_fd)
        forkserver._forkserver._forkserver_alive_fd = None
    parent = os.getppid()  # the runner (spawn) or the fork server
    if not _alive(runner_pid):  # it died before the pidfd was open (or before the server saw it go)
        os._exit(3)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pending: list[tuple[int, float]] = []
    for sig in JOB_SIGNALS - {signal.SIGINT}:
        signal.signal(sig, lambda signum, _frame: pending.append((signum, time.monotonic())))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, JOB_SIGNALS - {signal.SIGINT})  # (held back while it started)
    output_to(log_path)
    torch.set_num_threads(threads)

    watch = select.poll()
    if runner is not None:
        watch.register(runner, select.POLLIN)

    def watchdog() -> None:  # (on every poll slice and before a checkpoint: one or two cheap system calls)
        # the runner gone (its pidfd readable; without pidfds: the fork server between us gone, a
        # new parent): stop at once. A lost fork server alone is no reason to stop.
        if (watch.poll(0) if runner is not None else os.getppid() != parent):
            os._exit(3)
        if pending:
            if stopping is not None and stopping():
                pending.clear()  # the job's signal: the runner is stopping the run, we go on to its end
            elif time.monotonic() - pending[0][1] > OWN_GRACE or stopping is None:
                signum = pending[0][0]
                signal.signal(signum, signal.SIG_DFL)  # this child's own: die of it, as the sender meant
                os.kill(os.getpid(), signum)

    return watchdog


def _children(parent: int) -> list[int]:
    """The pids whose parent is ``parent`` (none where there is no /proc: there PR_SET_PDEATHSIG
    ends them, see prepare_child)."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == parent:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):  # (gone meanwhile)
                pass
    return found


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(option, value, 0, 0, 0)
    except OSError:  # not Linux
        pass


def _subreaper() -> int:
    """Is this process a subreaper now (PR_GET_CHILD_SUBREAPER)? 0 where that cannot be asked."""
    flag = ctypes.c_int(0)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0)
    except OSError:
        pass
    return flag.value


def _readable(fd: int) -> bool:
    poll = select.poll()  # (not select.select: a pidfd may be numbered above 1024)
    poll.register(fd, select.POLLIN)
    return bool(poll.poll(0))


def _pidfd(pid: int) -> int | None:
    """A pidfd of ``pid`` (Linux ≥ 5.3), or None where there is none: then only the parent check."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _alive(pid: int) -> bool:
    """Is ``pid`` running? A zombie (dead, not yet reaped by its parent) is not."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (not Linux)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True


# what the fork server imports once, so that no child imports it again
# (torch._dynamo: torch.optim imports it at the first optimiser, 1.5 s a process on its own)
PRELOAD = ["torch", "torch._dynamo", "zmq", "numpy", "sharedgan.engines.parallel.child"]


SERVER_DIR_PREFIX = "sharedgan-mp-"  # the private folder that holds the fork server's socket file


def _server_exit(server_pid: int = os.getpid()) -> None:
    """At exit of a fork server of a run's (it imports this module, so this is registered there):
    its runner has gone or stopped it. Kill any child still running (a dead runner's, mid-step:
    they must not train on) and remove the socket folder. A server killed outright (SIGKILL, the
    OOM killer) runs none of this: its children go on under their runner. Children forked from
    the server inherit the registration and skip it (another pid)."""
    address = getattr(forkserver._forkserver, "_forkserver_address", None)
    # (in the runner, which imports this module too, the address is set while its server runs:
    # but there the server's pid is set too, and the runner's children are not this handler's)
    if os.getpid() != server_pid or forkserver._forkserver._forkserver_pid is not None \
            or not isinstance(address, str) \
            or not os.path.basename(os.path.dirname(address)).startswith(SERVER_DIR_PREFIX):
        return
    for pid in _children(server_pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(os.path.dirname(address), ignore_errors=True)


atexit.register(_server_exit)


class ProcessGroup:
    def __init__(self, run_id: str, start_method: str = "forkserver"):
        self.start_method = start_method
        self.context = mp.get_context(start_method)
        self.run_id = run_id
        self.procs: dict[str, BaseProcess] = {}
        self.logs: dict[str, str] = {}
        self.exited: dict[str, int | None] = {}
        self._pidfds: dict[str, int | None] = {}  # name → its pidfd (None: no pidfds here, the sentinel)
        self._served: set[str] = set()  # the names a fork server of ours started (their status is its)
        # the run's private folder: the fork server's socket file and every role's inbox; the
        # server removes it at its exit (and so even after the runner is killed), shutdown too
        self.folder = private_folder(SERVER_DIR_PREFIX)
        self.server_dir: str | None = None  # the folder, once a server of this run's uses it
        self._server_pid: int | None = None
        self._server_fd: int | None = None  # the server's pidfd
        self._was_subreaper: int | None = None
        self._poller_key: tuple | None = None

    def _start_server(self) -> None:
        """Before the first child: a fork server of this run's own. multiprocessing puts its socket
        file in the process's temporary folder, removed only when this process exits: give it one
        of ours for the run. If this process already runs a fork server (a user's pool), it is not
        ours to stop: this run spawns its children instead."""
        if self.start_method != "forkserver" or self.server_dir is not None:
            return
        if forkserver._forkserver._forkserver_pid is not None:
            self.start_method, self.context = "spawn", mp.get_context("spawn")
            return
        if self._was_subreaper is None:  # a lost server's children come to us, not to init
            self._was_subreaper = _subreaper()
            _prctl(PR_SET_CHILD_SUBREAPER, 1)
        self.server_dir = self.folder
        self.context.set_forkserver_preload(PRELOAD)  # (ours only: a user's own server keeps its preload)
        config = mp_process.current_process()._config
        self._saved_tempdir = config.get("tempdir")
        config["tempdir"] = self.server_dir
        forkserver.ensure_running()
        self._watch_server()

    def _forget_server(self) -> None:
        """multiprocessing's record of the server gone (as ForkServer._stop leaves it), and the
        process's temporary folder its own again."""
        server = forkserver._forkserver
        if server._forkserver_alive_fd is not None:
            os.close(server._forkserver_alive_fd)
        server._forkserver_pid = server._forkserver_alive_fd = server._forkserver_address = None
        config = mp_process.current_process()._config
        config["tempdir"] = self._saved_tempdir
        if self._saved_tempdir is None:
            del config["tempdir"]
        if self._server_fd is not None:
            os.close(self._server_fd)
            self._server_fd = None
        self.server_dir = None

    def lost_server(self, replace: bool = True) -> str | None:
        """If this run's fork server died since the last call, a line saying how. Its children go
        on (they are this process's now); a new server starts (``replace``), else the next
        :meth:`spawn` starts one."""
        if self._server_fd is None or not _readable(self._server_fd):
            return None
        pid = self._server_pid
        how = "exited"
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
            if got == pid:
                how = describe_exit(os.waitstatus_to_exitcode(status))
        except ChildProcessError:  # multiprocessing reaped it already, starting the next child
            pass
        os.close(self._server_fd)
        self._server_fd = None
        if forkserver._forkserver._forkserver_pid == pid:
            self._forget_server()
            if not replace:
                return f"the fork server (pid {pid}) {how}"
            # a new one at once, not at the next start: its exit removes the run's folder should
            # the runner be killed later
            with self._starting():
                self._start_server()
        else:  # multiprocessing started a new one meanwhile (in the same folder): watch that one
            self._watch_server()
        return f"the fork server (pid {pid}) {how}"

    def _watch_server(self) -> None:
        self._server_pid = forkserver._forkserver._forkserver_pid
        self._server_fd = _pidfd(self._server_pid)

    def _stop_server(self) -> None:
        """The server carries this run's marker and would outlive the run in a long-lived process
        (a notebook, a test session): stop it (as ForkServer._stop does: close its pipe, reap it)
        and remove its folder; the next run starts its own."""
        try:
            if self.server_dir is not None:
                server = forkserver._forkserver
                try:
                    if server._forkserver_pid is not None:
                        os.close(server._forkserver_alive_fd)
                        server._forkserver_alive_fd = None
                        os.waitpid(server._forkserver_pid, 0)
                finally:
                    self._forget_server()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)  # (a server removes it too, on its way out)
            if self._was_subreaper is not None:
                _prctl(PR_SET_CHILD_SUBREAPER, self._was_subreaper)
                self._was_subreaper = None

    @contextlib.contextmanager
    def _starting(self):
        """While a child or the fork server starts: the run's marker in the environment (inherited
        by it, never by anyone else), and the job's signals blocked. A terminal's Ctrl-C (and
        timeout's, systemd's, SLURM's SIGTERM, a closed terminal's SIGHUP) reaches the whole
        process group; the fork server and every child start with them *blocked* (the mask
        survives fork and exec; prepare_child then ignores them), while one sent to the runner in
        this window is only held back, not lost."""
        previous = os.environ.get(RUN_ENV)
        os.environ[RUN_ENV] = self.run_id
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, JOB_SIGNALS)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            if previous is None:
                os.environ.pop(RUN_ENV, None)
            else:
                os.environ[RUN_ENV] = previous

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
        with self._starting():
            self._start_server()
            proc = self.context.Process(target=target, args=args, name=name, daemon=True)
            proc.start()
        self.procs[name], self.logs[name] = proc, log
        self._pidfds[name] = _pidfd(proc.pid)
        if self.start_method == "forkserver":
            self._served.add(name)
        else:
            self._served.discard(name)
        return proc

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items()}

    def _watched(self) -> dict[str, int]:
        """name → the descriptor readable when that running child exits."""
        return {n: self._pidfds[n] if self._pidfds[n] is not None else p.sentinel
                for n, p in self.procs.items() if n not in self.exited}

    def _has_exited(self, name: str) -> bool:
        fd = self._pidfds[name]
        return _readable(fd) if fd is not None else self.procs[name].exitcode is not None

    def wait(self, sockets: Iterable[zmq.Socket], timeout: float) -> bool:
        """Block until a socket is readable, a child (or the fork server) exits, or ``timeout``
        seconds pass; True if a child may have exited (then :meth:`reap` and :meth:`lost_server`).
        The poller is rebuilt only when the set of watched processes changes: the runner wakes for
        every signal, so this stays cheap."""
        fds = set(self._watched().values()) | ({self._server_fd} if self._server_fd is not None else set())
        key = (tuple(id(s) for s in sockets), tuple(sorted(fds)))
        if self._poller_key != key:
            self._poller, self._poller_key, self._fds = zmq.Poller(), key, fds
            for sock in sockets:
                self._poller.register(sock, zmq.POLLIN)
            for fd in fds:
                self._poller.register(fd, zmq.POLLIN)
        ready = self._poller.poll(int(timeout * 1000))
        return any(what in self._fds for what, _ in ready)

    def _exit_code(self, name: str) -> int | None:
        """The exit code of a child that has exited (negative: the signal that killed it)."""
        proc = self.procs[name]
        fd = self._pidfds[name]
        if name in self._served and fd is not None and hasattr(os, "P_PIDFD"):
            # a lost server's child is ours now (subreaper): its status is ours to collect (by
            # pidfd, so never the status of another child that took a reused pid)
            try:
                info = os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG)
                if info is not None:
                    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
            except ChildProcessError:  # the server's child: it reports the status down the sentinel
                pass
        proc.join(5.0)
        return proc.exitcode

    def reap(self) -> list[tuple[str, int | None]]:
        """Children that exited since the last call, as (name, exit code)."""
        newly = []
        for name in list(self.procs):
            if name not in self.exited and self._has_exited(name):
                self.exited[name] = code = self._exit_code(name)
                fd = self._pidfds[name]
                if fd is not None:
                    os.close(fd)
                    self._pidfds[name] = None
                newly.append((name, code))
        return newly

    def kill(self, name: str) -> None:
        """SIGKILL one child (a hung one); it is reaped like any other exit."""
        if name not in self.exited and not self._has_exited(name):
            fd = self._pidfds[name]
            try:
                if fd is not None:  # (by pidfd: never another process that took a reaped pid)
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                else:
                    self.procs[name].kill()
            except ProcessLookupError:  # it exited (and was reaped) meanwhile
                pass

    def running(self) -> list[str]:
        return [n for n in self.procs if n not in self.exited and not self._has_exited(n)]

    def _wait_all(self, deadline: float) -> None:
        while self.running() and time.monotonic() < deadline:
            self.lost_server(replace=False)  # (a dead server's pidfd stays readable until then: no busy loop)
            self.wait((), max(0.0, min(0.05, deadline - time.monotonic())))

    def shutdown(self, grace: float = 2.0, ask: Callable[[], None] | None = None) -> None:
        """Stop every child: ``ask`` them (ABORT), wait ``grace``, SIGKILL (they ignore SIGTERM,
        which is the job's, not theirs), and reap them all."""
        try:
            if ask is not None and self.running():
                ask()
            self._wait_all(time.monotonic() + grace)
            for name in self.running():
                self.kill(name)
            self._wait_all(time.monotonic() + 10.0)  # (a SIGKILL takes a moment to land)
            self.reap()
            for name, proc in self.procs.items():
                proc.join()
                proc.close()
        finally:
            for name, fd in self._pidfds.items():
                if fd is not None:
                    os.close(fd)
                    self._pidfds[name] = None
            self._stop_server()
