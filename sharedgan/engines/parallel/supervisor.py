"""The parallel engine, runner side: spawn the roles, record what they report, own their lives.

The roles' loops and the round protocol are in :mod:`sharedgan.engines.parallel.loops`. The runner
(this module) starts every role, says BEGIN when all are READY, records ROUND_DONE / EVAL_READY /
CHECKPOINT_SAVED, publishes checkpoints, and watches for trouble:

* a child that exits badly (a crash, a signal) — the run ends naming it, or with
  ``--on-failure respawn`` the role is restarted from its latest checkpoint while the others wait
  at a round boundary (RESYNC → RESYNC_ACK → BEGIN, see parallel.loops);
* a child that stops sending heartbeats for ``--heartbeat-timeout`` s (SIGSTOP, a deadlock) — it is
  killed and handled like a crash;
* DIVERGED — NaN or Inf in a role; the run ends, the last good checkpoint stays (never respawned:
  the same state would diverge again);
* Ctrl-C / SIGTERM — STOP to D, which makes the next round the last; a final checkpoint follows.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Callable

import torch
import zmq

from sharedgan.config import TrainConfig
from sharedgan.engines import publish_checkpoint
from sharedgan.engines.parallel.child import EXIT_DIVERGED, EXIT_WRITE_FAILED, role_main
from sharedgan.engines.recorder import RunRecorder
from sharedgan.errors import DIVERGENCE_KINDS, RoleFailed, describe_exit
from sharedgan.roles.build import model_spec
from sharedgan.roles.generator import make_body
from sharedgan.runtime import devices, placement
from sharedgan.runtime.buffer import ParameterRegion, SlotBuffer, fields_of
from sharedgan.runtime.memory import peak_rss
from sharedgan.runtime.messages import Endpoints, Kind, Mailbox, Message, Outbox, Role
from sharedgan.runtime.procgroup import ProcessGroup
from sharedgan.storage import checkpoint
from sharedgan.storage.files import write_atomic
from sharedgan.storage.rundir import log_path

log = logging.getLogger("sharedgan")


STOP_GRACE = 8.0  # seconds without progress (a round or a checkpoint) the roles get after a STOP


ABORT_GRACE = 2.0


EXIT_GRACE = 5.0  # seconds a role that said FINISHED gets to exit (its sockets linger at most 1 s)


def _sender(msg: Message) -> str:
    """The process that sent ``msg``: generators put their k in ``slot``, D and C processes their
    replica number (−1 or 0: the primary) on every message to the runner."""
    if msg.role == Role.GENERATOR:
        return f"generator-{msg.slot}"
    return msg.role.name.lower() + (f"-{msg.slot}" if msg.slot > 0 else "")


class Supervisor:
    HUNG_END = "it was killed"  # what becomes of a hung role (the runner kills its own children)

    def __init__(self, config: TrainConfig, run_dir: Path, recorder: RunRecorder, stop, start: int,
                 restore: Path | None):
        self.config, self.run_dir, self.recorder, self.stop = config, run_dir, recorder, stop
        self.start, self.restore = start, restore
        spec = model_spec(config, recorder.dataset)
        # On CUDA the runner allocates the buffer and holds it for the whole run: children map the
        # same memory through CUDA IPC handles, which stay valid only while the allocation lives.
        self.buf = SlotBuffer.allocate(fields_of(config, spec.sample_shape), config.k,
                                       devices.buffer_device(config))
        recorder.slot_buffer_bytes = self.buf.nbytes
        self.token = secrets.token_bytes(16)
        # set once the runner is stopping the run (its own SIGINT/SIGTERM/SIGHUP): a child that got
        # the same signal (sent to the whole group) then knows it was the job's, not its own
        self.stop_flag = torch.zeros(1, dtype=torch.int8).share_memory_()
        stop.on_stop = lambda: self.stop_flag.fill_(1)  # at once, in the signal's handler
        self.group: ProcessGroup | None = None  # (made in run(): its private folder must never outlive it)
        self.endpoints: Endpoints | None = None
        self.context = zmq.Context()
        self.inbox: Mailbox | None = None
        self.outbox: Outbox | None = None
        self.roles = config.roles  # what checkpoints: generators, D, C
        self.processes = config.processes  # every child: the roles and (engine async) D and C replicas
        # the parameter regions of replicated D and C (engine async), of a shared generator body
        self.regions: dict = {}
        if config.share_generator_body:  # one body for every generator process, and a row for each one's gradient
            body = make_body(config, spec)
            self._body = ParameterRegion.for_model(body, devices.buffer_device(config), buffers=False)
            self._body_grads = torch.zeros(config.k, sum(p.numel() for p in body.parameters()),
                                           device=devices.buffer_device(config))
            if self._body_grads.device.type == "cpu":
                self._body_grads.share_memory_()
            self.regions["generator-body"] = self._body.handle() + (self._body_grads,)
        self.failure: RoleFailed | None = None
        self.last_round = start - 1
        self.ready: set[str] = set()
        self.finished: set[str] = set()
        self.begun = False
        self.eval_ready: dict[int, list[float]] = {}
        self.saved: dict[int, int] = {}
        self.last_seen: dict[str, float] = {}
        self.hung: dict[str, str] = {}
        self.restarts: dict[str, int] = {}
        self.resync: dict | None = None  # {"role", "acks": {name: round}, "deadline"} while a respawn is under way
        self.epoch = 0  # counts resyncs; BEGIN and RESYNC_ACK carry it
        self.stop_sent_at: float | None = None
        self.finished_at = 0.0
        self._handlers = self.handlers()

    # ---- processes ---------------------------------------------------------------------------
    def _spawn(self, name: str, restore: Path | None) -> None:
        args = (name, self.config.to_json(), str(self.run_dir), self.buf.handle(), self.endpoints.spec(), self.token,
                os.getpid(), str(restore) if restore else None, self.epoch, self.regions, self.stop_flag)
        self.group.spawn(name, role_main, args, str(log_path(self.run_dir, name)))
        self.last_seen[name] = time.monotonic()
        write_atomic(self.run_dir / "processes.json",
                     json.dumps({"runner": os.getpid(), **self.group.pids()}, indent=2))

    def _begin(self, round_index: int) -> None:
        for name in self.processes:
            self.outbox.send(name, Kind.BEGIN, -1, round_index, (self.epoch,))
        self.eval_ready.clear()  # evaluations of abandoned rounds are never completed

    # ---- messages ----------------------------------------------------------------------------
    def _heard(self, msg: Message) -> str:
        name = _sender(msg)
        self.last_seen[name] = time.monotonic()
        return name

    def handlers(self) -> dict[Kind, Callable[[Message, str], None]]:
        """What the runner does on each kind of message (a HEARTBEAT only counts as heard). The
        async supervisor extends this table."""
        return {Kind.READY: self._on_ready, Kind.RESYNC_ACK: self._on_resync_ack, Kind.ROUND_DONE: self._on_round_done,
                Kind.TIMES: self._on_times, Kind.EVAL_READY: self._on_eval_ready,
                Kind.CHECKPOINT_SAVED: self._on_checkpoint_saved, Kind.DIVERGED: self._on_diverged,
                Kind.WRITE_FAILED: self._on_write_failed, Kind.FINISHED: self._on_finished}

    def _handle(self, msg: Message) -> None:
        name = self._heard(msg)
        handler = self._handlers.get(msg.kind)
        if handler is not None:
            handler(msg, name)

    def _on_ready(self, msg: Message, name: str) -> None:
        self.ready.add(name)
        if self.resync is None and not self.begun and len(self.ready) == len(self.processes):
            self.begun = True
            self.recorder.start_training()
            self._begin(self.start)
            log.info("all %d processes ready, training started at round %d", len(self.processes), self.start)

    def _on_resync_ack(self, msg: Message, name: str) -> None:
        if self.resync is not None and int(msg.values[0]) == self.epoch:
            self.resync["acks"][name] = msg.round

    def _on_round_done(self, msg: Message, name: str) -> None:
        self.last_round = max(self.last_round, msg.round)
        self._progress()
        if msg.role == Role.GENERATOR:
            self.recorder.generator(msg.slot, msg.round, *msg.values[:5])
        elif msg.role == Role.DISCRIMINATOR:
            self.recorder.discriminator(msg.round, msg.values[0])
        elif msg.role == Role.TEACHER:
            self.recorder.teacher(msg.round, *msg.values[:2])
        else:
            self.recorder.classifier(msg.round, msg.values[0])

    def _on_times(self, msg: Message, name: str) -> None:
        self.recorder.times(msg.role.name.lower(), msg.slot, msg.round, *msg.values[:3])

    def _on_eval_ready(self, msg: Message, name: str) -> None:
        seconds = self.eval_ready.setdefault(msg.round, [])
        seconds.append(msg.values[0])
        if len(seconds) == self.config.k:
            samples = self.buf.eval_sample.to("cpu", copy=True)
            for k in range(self.config.k):
                self.outbox.send(f"generator-{k}", Kind.EVAL_RELEASED, k, msg.round)
            self.recorder.evaluate(msg.round, samples, max(self.eval_ready.pop(msg.round)),
                                   metrics_overlap_training=True)

    def _on_checkpoint_saved(self, msg: Message, name: str) -> None:
        self._progress()
        self.saved[msg.round] = self.saved.get(msg.round, 0) + 1
        if self.saved[msg.round] == len(self.roles):
            publish_checkpoint(self.config, self.run_dir, msg.round, self.recorder)
            self._checkpoint_complete(msg.round)

    def _on_diverged(self, msg: Message, name: str) -> None:
        self._fail(RoleFailed(name, None, self.group.logs[self.config.host(name)],
                              f"{name} diverged at round {msg.round}: NaN or Inf in its "
                              f"{DIVERGENCE_KINDS[int(msg.values[0])]}"))

    def _on_write_failed(self, msg: Message, name: str) -> None:
        errno = int(msg.values[0])
        why = os.strerror(errno) if errno else "write error"
        self._fail(RoleFailed(name, None, self.group.logs[name],
                              f"{name} could not write its checkpoint of round {msg.round}: {why}; free "
                              "space (or raise the file-size limit) and resume"))

    def _read_memory(self, names=None) -> None:
        """Peak resident memory of the children (of ``names``; None: every one running)."""
        pids = self.group.pids()
        for name in self.group.running() if names is None else names:
            if name in pids:
                self.recorder.memory(name, peak_rss(pids[name]))

    def _on_finished(self, msg: Message, name: str) -> None:
        self._read_memory([self.config.host(name)])  # (its last reading: it exits now)
        self.recorder.memory(self.config.host(name), int(msg.values[2]) or None)  # (its own, on another machine too)
        if msg.values[0] > 0:  # its peak CUDA memory, which only it could read
            self.recorder.cuda_memory(self.config.host(name), int(msg.values[0]))
        if self.config.transport == "distributed":
            self.recorder.sent_bytes[self.config.host(name)] = int(msg.values[1])
        self.finished.add(name)
        self.finished_at = time.monotonic()
        self.outbox.send(name, Kind.DISMISSED)

    def _checkpoint_complete(self, round_index: int) -> None:
        """Every role's state of ``round_index`` is on disk and the manifest written."""

    def _stop_overdue(self) -> RoleFailed:
        """The failure of a run whose roles made no progress for STOP_GRACE s after a STOP."""
        running = ", ".join(self.group.running())
        return RoleFailed("roles", None, None, f"{running} did not stop within {STOP_GRACE:g} s")

    def _send_stop(self) -> None:
        self.outbox.send("discriminator", Kind.STOP)
        log.info("stop requested; D makes the next round the last")

    def _progress(self) -> None:
        if self.stop_sent_at is not None:  # still making progress towards the final round
            self.stop_sent_at = time.monotonic()

    def _fail(self, failure: RoleFailed) -> None:
        if self.failure is None:
            self.failure = failure

    # ---- failures: end the run, or respawn -----------------------------------------------------
    def _lost(self, name: str, code: int) -> None:
        """A child exited badly (or was killed because it hung)."""
        if code in (EXIT_DIVERGED, EXIT_WRITE_FAILED) and self.failure is None:
            self._hear_last_words()
        self.ready.discard(name)
        detail = self.hung.pop(name, "") or f"{name} {describe_exit(code)}"
        failure = RoleFailed(name, code, self.group.logs[name], detail)
        cfg = self.config
        if (cfg.on_failure != "respawn" or not self.begun or self.resync is not None or self.stop.requested
                or self.finished or code in (EXIT_DIVERGED, EXIT_WRITE_FAILED) or self.failure is not None):
            self._fail(failure)
            return
        used = self.restarts.get(name, 0)
        if used >= cfg.max_restarts:
            self._fail(RoleFailed(name, code, self.group.logs[name],
                                  f"{detail}; gave up after {used} restart{'s' * (used != 1)} (--max-restarts)"))
            return
        self.restarts[name] = used + 1
        skipped: list[str] = []
        source = checkpoint.latest(self.run_dir, skipped)
        where = f"checkpoint {source.name}" if source else "its initial state (no checkpoint yet)"
        log.warning("%s; restart %d of %d from %s", detail, used + 1, cfg.max_restarts, where)
        self.recorder.event(self.last_round, name, f"{detail}; restarted from {where}")
        survivors = [r for r in self.roles if r != name]
        self.epoch += 1
        for r in survivors:
            self.outbox.send(r, Kind.RESYNC, -1, self.epoch)
        self.resync = {"role": name, "acks": {}, "deadline": time.monotonic() + cfg.startup_timeout}
        self._spawn(name, source)

    def _hear_last_words(self, grace: float = 2.0) -> None:
        """A role that exits with these codes sent why (DIVERGED, WRITE_FAILED) just before; its
        exit can be seen before that signal is read: read on a moment, so the error names the cause."""
        deadline = time.monotonic() + grace
        while self.failure is None and time.monotonic() < deadline:
            if self.inbox.socket.poll(50, zmq.POLLIN):
                self._handle_inbox()

    def _handle_inbox(self) -> None:
        """Every signal already queued, in order."""
        self.inbox.drain()
        pending, self.inbox.pending = self.inbox.pending, []
        for msg in pending:
            self._handle(msg)
        for lost in self.inbox.lost:  # (after the signals that did arrive: a checkpoint they complete is published)
            self._fail(RoleFailed(lost.name, None, self.group.logs.get(lost.name), str(lost)))
        self.inbox.lost.clear()

    def _check_resync(self, now: float) -> None:
        rs = self.resync
        if rs is None:
            return
        survivors = [r for r in self.roles if r != rs["role"]]
        complete = rs["role"] in self.ready and all(r in rs["acks"] for r in survivors)
        resume_at = max([self.last_round, *rs["acks"].values()]) + 1
        if self.finished or (complete and resume_at >= self.config.rounds):
            # a role ended its last round meanwhile: no round is left to rejoin
            self._fail(RoleFailed(rs["role"], None, None, f"{rs['role']} was lost in the last round"))
        elif complete:
            self.resync = None
            log.info("%s back; every role restarts at round %d", rs["role"], resume_at)
            self._begin(resume_at)
        elif now > rs["deadline"]:
            missing = sorted(set(survivors) - set(rs["acks"]) | ({rs["role"]} - self.ready))
            self._fail(RoleFailed(rs["role"], None, None,
                                  f"restarting {rs['role']} did not complete within "
                                  f"{self.config.startup_timeout:g} s (waiting for {', '.join(missing)})"))

    def _check_heartbeats(self, now: float) -> None:
        limit = self.config.heartbeat_timeout
        for name in self.group.running():
            # a role that said FINISHED is on its way out (the shutdown grace covers it)
            watched = name in self.ready and name not in self.finished and name not in self.hung
            if watched and now - self.last_seen[name] > limit:
                silent = now - self.last_seen[name]
                self.hung[name] = (f"{name} stopped making progress: no heartbeat for {silent:.0f} s "
                                   f"(stopped or deadlocked; --heartbeat-timeout {limit:g}); {self.HUNG_END}")
                log.warning("%s: killing it", self.hung[name].removesuffix(f"; {self.HUNG_END}"))
                self.group.kill(name)

    # ---- the loop ----------------------------------------------------------------------------
    def _open(self) -> None:
        """The children's owner and the runner's ends of the control plane."""
        self.group = ProcessGroup(secrets.token_hex(8))
        self.endpoints = Endpoints(self.group.run_id, self.group.folder)
        self.inbox = Mailbox(self.context, self.endpoints.address("runner"), self.token)
        self.outbox = Outbox(self.context, self.token, Role.RUNNER, -1, self.endpoints, self.processes)

    def _cleanup_endpoints(self) -> None:
        self.endpoints.cleanup()

    def run(self) -> int:
        try:
            self._open()
            cfg, group = self.config, self.group
            for name in self.processes:
                self._spawn(name, self.restore)
            if group.pids():  # (torchrun's ranks were started by torchrun)
                log.info("spawned %s", ", ".join(f"{n} ({p})" for n, p in group.pids().items()))
            if cfg.pin_roles:  # (the children plan over the CPUs they inherit, the same unless the runner's moved)
                plan = placement.core_plan(self.processes, cfg.k, sorted(os.sched_getaffinity(0)), cfg.threads)
                log.info("--pin-roles, planned over the runner's CPUs (each child logs where it runs): %s",
                         placement.describe(plan) if plan else f"fewer than 2 blocks of {cfg.threads} CPUs, "
                         "nothing to place")
            deadline = time.monotonic() + cfg.startup_timeout
            next_check = next_memory = 0.0
            while len(self.finished) < len(self.processes) or group.running():
                exited = group.wait([self.inbox.socket], 0.1)
                self._handle_inbox()
                now = time.monotonic()
                if exited or now >= next_check:  # (heartbeats and exits of hung ones: a few times a second)
                    next_check = now + 0.2
                    lost = group.lost_server()
                    if lost is not None:  # (the OOM killer's pick, say): nothing the roles need
                        log.warning("%s; the roles go on, the next role started gets a new one", lost)
                        self.recorder.event(self.last_round, "fork-server", f"{lost}; the roles went on")
                    for name, code in group.reap():
                        if code != 0:
                            # what it and the others said before it died comes first (a slow
                            # evaluation here can leave a checkpoint's last report unread)
                            self._handle_inbox()
                            self._lost(name, code)
                    if self.failure is not None:
                        break
                    self._check_heartbeats(now)
                    if now >= next_memory:
                        next_memory = now + 1.0
                        self._read_memory()
                self._check_resync(now)
                if self.failure is not None:
                    break
                if not self.begun and now > deadline:
                    missing = ", ".join(sorted(set(self.processes) - self.ready))
                    self._fail(RoleFailed(missing, None, None,
                                          f"{missing} did not start within {cfg.startup_timeout:g} s"))
                    break
                if self.stop.requested:
                    self.stop_flag[0] = 1
                if self.stop.requested and not self.begun:
                    log.info("stop requested during start-up; no round ran, nothing to checkpoint")
                    break
                if self.stop.requested and self.stop_sent_at is None:
                    self._send_stop()
                    self.stop_sent_at = now
                if self.resync is not None and self.stop_sent_at is not None:
                    self.stop_sent_at = now  # a respawning role is still importing; the grace starts after it
                if self.stop_sent_at is not None and now - self.stop_sent_at > STOP_GRACE:
                    self._fail(self._stop_overdue())
                    break
                if len(self.finished) == len(self.processes) and now - self.finished_at > EXIT_GRACE:
                    log.warning("%s finished but did not exit within %g s", ", ".join(group.running()), EXIT_GRACE)
                    break  # every report is in; the shutdown below ends the stragglers
                if self.stop.hard:  # a second Ctrl-C: stop now; the last periodic checkpoint is what remains
                    log.info("second interrupt: stopping without a final checkpoint")
                    break
        finally:
            self._close()
        if self.failure is not None:
            raise self.failure
        return self.last_round

    def _close(self) -> None:
        self.stop.on_stop = None  # (it holds this supervisor, and with it the buffer, alive)
        try:
            if self.group is not None:
                self.group.shutdown(ABORT_GRACE, ask=lambda: [self.outbox.send(r, Kind.ABORT, required=False)
                                                              for r in self.group.running()])
        finally:
            for part in (self.inbox, self.outbox):
                if part is not None:
                    part.close()
            self.context.term()
            if self.endpoints is not None:
                self._cleanup_endpoints()
            # shared memory goes now, not at the next garbage collection (the handler table and the
            # stop handler tie this object into cycles)
            del self.buf, self.stop_flag
            self._handlers, self.regions = {}, {}


def run(config: TrainConfig, run_dir: Path, recorder: RunRecorder, stop, start: int = 0,
        restore: Path | None = None) -> int:
    """Train rounds ``start``.. with every role in its own process; return the last round run."""
    return Supervisor(config, run_dir, recorder, stop, start, restore).run()
