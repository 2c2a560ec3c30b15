"""The runner on rank 0 of a torchrun job: the parallel engine's supervisor, whose roles are ranks.

The supervisor (:mod:`sharedgan.engines.parallel.supervisor`) is unchanged in what it records and
decides; only what it owns differs. torchrun started the roles, so there is nothing to spawn, reap
or kill: :class:`RankGroup` answers the supervisor's questions about its "children" from what the
roles said (a role is running until the runner dismissed it), a hung role is caught by its
heartbeats as on one machine, and ends the run (torchrun then stops the ranks that are left, or
restarts the group with ``--max-restarts``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Callable, Iterable

import zmq

from sharedgan.cluster.torchrun import Cluster, bind_inbox, mark_run_dir
from sharedgan.engines.parallel.supervisor import Supervisor
from sharedgan.errors import RoleFailed
from sharedgan.runtime.messages import Kind, Outbox, Role
from sharedgan.runtime.transport import PointToPoint
from sharedgan.storage.files import write_atomic
from sharedgan.storage.rundir import log_path

log = logging.getLogger("sharedgan")

SILENT = 3.0  # seconds without a signal (a role sends a heartbeat about every second) that mark a role gone


class RankGroup:
    """The roles on the other ranks, seen from the runner (the ProcessGroup interface)."""

    def __init__(self, cluster: Cluster, run_dir: Path, finished: set[str]):
        self.cluster, self.finished = cluster, finished
        self.names = [n for n in cluster.ranks if n != "runner"]
        self.logs = {n: str(log_path(run_dir, n)) for n in self.names}
        self.given_up: list[str] = []  # hung roles the runner cannot kill from here: reported once, as lost
        self.poller: zmq.Poller | None = None

    def spawn(self, name: str, target: Callable, args: tuple, log: str) -> None:
        pass  # (torchrun started it)

    def pids(self) -> dict[str, int]:
        return {}  # (another machine's pids: nothing the runner can read or signal)

    def wait(self, sockets: Iterable[zmq.Socket], timeout: float) -> bool:
        if self.poller is None:
            self.poller = zmq.Poller()
            for sock in sockets:
                self.poller.register(sock, zmq.POLLIN)
        self.poller.poll(int(timeout * 1000))
        return bool(self.given_up)

    def lost_server(self) -> None:
        return None

    def reap(self) -> list[tuple[str, int | None]]:
        lost, self.given_up = self.given_up, []
        return [(name, None) for name in lost]

    def kill(self, name: str) -> None:
        """A hung role: the run ends (ABORT to the others); torchrun ends its process."""
        self.given_up.append(name)

    def running(self) -> list[str]:
        return [n for n in self.names if n not in self.finished]

    def shutdown(self, grace: float = 2.0, ask: Callable[[], None] | None = None) -> None:
        if ask is not None and self.running():
            ask()


class ClusterSupervisor(Supervisor):
    """The parallel engine's runner, with roles on torchrun ranks and a local copy of the buffer
    that the point-to-point transport fills with what the signals carry (the evaluation samples)."""

    HUNG_END = "the run ends (torchrun stops its process)"  # (a rank is not the runner's to kill)

    def __init__(self, *args, cluster: Cluster):
        super().__init__(*args)
        self.cluster = cluster
        self.token = cluster.token  # (every rank had it from the start)
        mark_run_dir(self.run_dir)
        if cluster.env.restart:
            where = f"checkpoint {self.restore.name}" if self.restore else "the start (no checkpoint yet)"
            allowed = os.environ.get("TORCHELASTIC_MAX_RESTARTS", "?")
            self.recorder.event(self.start - 1, "torchrun",
                                f"torchrun restarted the group (restart {cluster.env.restart} of {allowed}, "
                                f"--max-restarts); resumed from {where}")

    def _spawn(self, name: str, restore: Path | None) -> None:
        self.last_seen[name] = time.monotonic()

    def _open(self) -> None:
        self.group = RankGroup(self.cluster, self.run_dir, self.finished)
        self.endpoints = self.cluster
        self.inbox = bind_inbox(self.context, self.cluster, self.cluster.token)
        self.cluster.connect(self.inbox.address)
        self.transport = PointToPoint(self.buf, self.cluster.ranks)
        self.inbox.arrival = self.transport.arrived
        self.outbox = Outbox(self.context, self.token, Role.RUNNER, -1, self.endpoints, self.processes)
        where = {n: {"rank": r} for n, r in self.cluster.ranks.items()}
        write_atomic(self.run_dir / "processes.json", json.dumps({"runner": os.getpid(), "ranks": where}, indent=2))
        log.info("roles on ranks: %s", ", ".join(f"{n} {r}" for n, r in self.cluster.ranks.items()))

    def _send_stop(self) -> None:
        # D makes the next round the last; the others only learn that the job's signal they also got
        # (torchrun and a terminal signal every rank) is being acted on, so they stay for the end
        for name in self.processes:
            self.outbox.send(name, Kind.STOP)
        log.info("stop requested; D makes the next round the last")

    def _stop_overdue(self) -> RoleFailed:
        # torchrun stops every rank when one fails; the runner cannot see a remote process end, but a
        # role whose process is gone (or hangs) has stopped sending signals: name it
        now = time.monotonic()
        silent = sorted((n for n in self.group.running() if now - self.last_seen[n] > SILENT),
                        key=lambda n: self.last_seen[n])
        if not silent:
            return super()._stop_overdue()
        quiet = now - self.last_seen[silent[0]]
        return RoleFailed(silent[0], None, self.group.logs[silent[0]],
                          f"{', '.join(silent)} went silent while the run was stopping (no signal for {quiet:.0f} s: "
                          "its process ended or hangs; its log and torchrun's report say which)")

    def _cleanup_endpoints(self) -> None:
        pass  # (tcp: no socket files)


def run(config, run_dir: Path, recorder, stop, start: int = 0, restore: Path | None = None, *,
        cluster: Cluster) -> int:
    """The parallel engine's :func:`~sharedgan.engines.parallel.supervisor.run`, its roles the ranks."""
    return ClusterSupervisor(config, run_dir, recorder, stop, start, restore, cluster=cluster).run()
