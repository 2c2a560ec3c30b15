"""The parallel engine: one process per generator, one for D, one for C, lock-step rounds.

Per round n (Algorithm 1), with every wait bounded by a timeout:

  generator k   write slot k ─SAMPLE_READY→ D, C ... wait VALIDATION_READY from D and C,
                update, ─ROUND_DONE→ runner, wait RELEASED from D (it says whether n is final),
                [evaluation, checkpoint], wait RELEASED from C, next round
  D             for k = 0..K−1: wait SAMPLE_READY k, validate ─VALIDATION_READY→ k,
                update ─RELEASED(final?)→ k; ─ROUND_DONE→ runner; on the final round ─FINAL→ C
  C             wait all K samples (or FINAL of round n−1), for k = 0..K−1: update, validate
                ─VALIDATION_READY→ k; then ─RELEASED→ every k; ─ROUND_DONE→ runner

D is the one role that decides when training ends: the round it starts after a STOP from the
runner (or the last planned round) is final, and it stamps that on its RELEASED messages, so all
roles stop after the same round and the final checkpoint is consistent.

ROUND_DONE values: generator (J^{G_k}, β_k, D term, C term); D (mean −J^D); C (mean C loss).
A role that finished says FINISHED and exits only when the runner DISMISSED it, so the runner has
processed every message of that role (one pipe keeps order) before the role's sockets go.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import time
import traceback
from pathlib import Path

import zmq

from .. import checkpoint
from ..buffer import SlotBuffer, slot_fields
from ..config import TrainConfig
from ..record import RunRecorder
from ..roles import dataset_of, model_spec
from ..roles.classifier import ClassifierRole
from ..roles.discriminator import DiscriminatorRole
from ..roles.generator import GeneratorRole
from ..rundir import log_path
from ..runner import ProcessGroup, RoleFailed, prepare_child
from ..signals import Aborted, Endpoints, Kind, Mailbox, Outbox, Role
from . import checkpoint_due, eval_due, mean

log = logging.getLogger("sharedgan")

EXIT_ABORTED = 3
STOP_GRACE = 8.0  # seconds without progress (a round or a checkpoint) the roles get after a STOP
ABORT_GRACE = 2.0
FINAL_LINGER_MS = 1000  # bounded: a normal exit never waits longer than this on a dead peer


class _Links:
    """A role's view of the control plane."""

    def __init__(self, mailbox: Mailbox, outbox: Outbox, config: TrainConfig):
        self.mailbox, self.outbox, self.config = mailbox, outbox, config

    def send(self, to: str, kind: Kind, slot: int = -1, round: int = -1, values=()):
        self.outbox.send(to, kind, slot, round, values)

    def wait(self, kind: Kind, role: Role, slot: int | None, round_index: int, first: bool = False):
        timeout = self.config.startup_timeout if first else self.config.signal_timeout
        return self.mailbox.wait_for(kind, role, slot, round_index, timeout)


def _generator_loop(config: TrainConfig, run_dir: Path, buf: SlotBuffer, links: _Links, k: int) -> None:
    spec = model_spec(config)
    role = GeneratorRole(config, spec, k)
    two = config.k > 1
    links.send("runner", Kind.READY, k)
    last_eval = None
    for n in range(config.rounds):
        role.write_sample(buf, n)
        links.send("discriminator", Kind.SAMPLE_READY, k, n)
        if two:
            links.send("classifier", Kind.SAMPLE_READY, k, n)
        links.wait(Kind.VALIDATION_READY, Role.DISCRIMINATOR, k, n, first=n == 0)
        if two:
            links.wait(Kind.VALIDATION_READY, Role.CLASSIFIER, k, n, first=n == 0)
        links.send("runner", Kind.ROUND_DONE, k, n, role.update(buf, n))
        final = links.wait(Kind.RELEASED, Role.DISCRIMINATOR, k, n).values[0] > 0.5
        if eval_due(config, n, final):
            if last_eval is not None:  # the runner has copied the previous evaluation out
                links.wait(Kind.EVAL_RELEASED, Role.RUNNER, k, last_eval)
            t0 = time.perf_counter()
            role.write_eval(buf, n)
            links.send("runner", Kind.EVAL_READY, k, n, (time.perf_counter() - t0,))
            last_eval = n
        if checkpoint_due(config, n, final):
            checkpoint.save_role(run_dir, n, role.name, role.state_dict(n))
            links.send("runner", Kind.CHECKPOINT_SAVED, k, n)
        if final:
            return
        if two:
            links.wait(Kind.RELEASED, Role.CLASSIFIER, k, n)


def _discriminator_loop(config: TrainConfig, run_dir: Path, buf: SlotBuffer, links: _Links) -> None:
    dataset = dataset_of(config)
    role = DiscriminatorRole(config, model_spec(config, dataset), dataset)
    links.send("runner", Kind.READY)
    stop_requested = False
    for n in range(config.rounds):
        links.mailbox.drain()
        stop_requested |= links.mailbox.take(lambda m: m.kind == Kind.STOP) is not None
        final = n == config.rounds - 1 or stop_requested
        losses = []
        for k in range(config.k):
            links.wait(Kind.SAMPLE_READY, Role.GENERATOR, k, n, first=n == 0)
            role.validate(buf, k, n)
            links.send(f"generator-{k}", Kind.VALIDATION_READY, k, n)
            losses.append(role.update(k, n))
            links.send(f"generator-{k}", Kind.RELEASED, k, n, (1.0 if final else 0.0,))
        links.send("runner", Kind.ROUND_DONE, -1, n, (mean(losses),))
        if final and config.k > 1 and n < config.rounds - 1:  # C knows the planned last round itself
            links.send("classifier", Kind.FINAL, -1, n)
        if checkpoint_due(config, n, final):
            checkpoint.save_role(run_dir, n, role.name, role.state_dict(n))
            links.send("runner", Kind.CHECKPOINT_SAVED, -1, n)
        if final:
            return


def _classifier_loop(config: TrainConfig, run_dir: Path, buf: SlotBuffer, links: _Links) -> None:
    role = ClassifierRole(config, model_spec(config))
    links.send("runner", Kind.READY)
    K = config.k
    for n in range(config.rounds):
        arrived: set[int] = set()
        while len(arrived) < K:
            msg = links.mailbox.wait(
                lambda m: m.matches(Kind.SAMPLE_READY, Role.GENERATOR, None, n) or m.matches(Kind.FINAL, Role.DISCRIMINATOR, None, n - 1),
                f"samples of round {n}", config.startup_timeout if n == 0 else config.signal_timeout)
            if msg.kind == Kind.FINAL:  # D ended training after round n − 1
                if not checkpoint_due(config, n - 1, False):
                    checkpoint.save_role(run_dir, n - 1, role.name, role.state_dict(n - 1))
                    links.send("runner", Kind.CHECKPOINT_SAVED, -1, n - 1)
                return
            arrived.add(msg.slot)
        losses = []
        for k in range(K):
            losses.append(role.serve_slot(buf, k, n))
            links.send(f"generator-{k}", Kind.VALIDATION_READY, k, n)
        final = n == config.rounds - 1
        if not final:  # on the planned last round generators exit without waiting for this
            for k in range(K):
                links.send(f"generator-{k}", Kind.RELEASED, k, n)
        links.send("runner", Kind.ROUND_DONE, -1, n, (mean(losses),))
        if checkpoint_due(config, n, final):
            checkpoint.save_role(run_dir, n, role.name, role.state_dict(n))
            links.send("runner", Kind.CHECKPOINT_SAVED, -1, n)
        if final:
            return


def role_main(name: str, config_json: str, run_dir: str, buffer_handle: tuple, endpoint_spec: tuple,
              token: bytes, parent_pid: int) -> None:
    """Entry point of every child process."""
    config = TrainConfig.from_dict(json.loads(config_json))
    watchdog = prepare_child(str(log_path(run_dir, name)), parent_pid, config.threads)
    log.info("%s started, pid %d", name, os.getpid())
    context = zmq.Context()
    endpoints = Endpoints(*endpoint_spec)
    mailbox = outbox = None
    code = 0
    finished_cleanly = False
    try:
        mailbox = Mailbox(context, endpoints.address(name), token, watchdog)
        if name.startswith("generator-"):
            k = int(name.split("-")[1])
            peers = ["runner", "discriminator"] + (["classifier"] if config.k > 1 else [])
            outbox = Outbox(context, token, Role.GENERATOR, k, endpoints, peers)
            loop = lambda links: _generator_loop(config, Path(run_dir), buf, links, k)  # noqa: E731
        else:
            generators = [f"generator-{j}" for j in range(config.k)]
            if name == "discriminator":
                peers = ["runner"] + generators + (["classifier"] if config.k > 1 else [])
                outbox = Outbox(context, token, Role.DISCRIMINATOR, -1, endpoints, peers)
                loop = lambda links: _discriminator_loop(config, Path(run_dir), buf, links)  # noqa: E731
            else:
                outbox = Outbox(context, token, Role.CLASSIFIER, -1, endpoints, ["runner"] + generators)
                loop = lambda links: _classifier_loop(config, Path(run_dir), buf, links)  # noqa: E731
        buf = SlotBuffer.attach(buffer_handle)
        links = _Links(mailbox, outbox, config)
        loop(links)
        links.send("runner", Kind.FINISHED, outbox.slot)
        mailbox.wait_for(Kind.DISMISSED, Role.RUNNER, timeout=config.signal_timeout)
        finished_cleanly = True
        log.info("%s finished", name)
    except Aborted:
        log.info("%s aborted by the runner", name)
        code = EXIT_ABORTED
    except BaseException:  # noqa: BLE001 - every failure must reach the log, then the runner
        traceback.print_exc()
        code = 1
    finally:
        if mailbox is not None:
            mailbox.close()
        if outbox is not None:
            outbox.close(linger_ms=FINAL_LINGER_MS if finished_cleanly else 0)
        context.term()
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


def run(config: TrainConfig, run_dir: Path, recorder: RunRecorder, stop) -> int:
    """Spawn the roles, record what they report, and own their lives until they all exit."""
    spec = model_spec(config, recorder.dataset)
    buf = SlotBuffer.allocate(slot_fields(config.batch_size, spec.sample_shape, config.eval_samples), config.k)
    token = secrets.token_bytes(16)
    endpoints = Endpoints()
    group = ProcessGroup(endpoints.run_id)
    context = zmq.Context()
    inbox = outbox = None
    roles = config.roles
    failure: RoleFailed | None = None
    last_round = -1
    try:
        inbox = Mailbox(context, endpoints.address("runner"), token)
        outbox = Outbox(context, token, Role.RUNNER, -1, endpoints, roles)
        for name in roles:
            group.spawn(name, role_main, (name, config.to_json(), str(run_dir), buf.handle(), endpoints.spec(), token,
                                          os.getpid()), str(log_path(run_dir, name)))
        (run_dir / "processes.json").write_text(json.dumps({"runner": os.getpid(), **group.pids()}, indent=2))
        log.info("spawned %s", ", ".join(f"{n} ({p})" for n, p in group.pids().items()))
        ready: set[str] = set()
        eval_ready: dict[int, list[float]] = {}
        saved: dict[int, int] = {}
        finished: set[str] = set()
        deadline = time.monotonic() + config.startup_timeout
        stop_sent_at = None
        while len(finished) < len(roles):
            group.wait([inbox.socket], 0.1)
            inbox.drain()
            for msg in inbox.pending:
                name = f"generator-{msg.slot}" if msg.role == Role.GENERATOR else msg.role.name.lower()
                if msg.kind == Kind.READY:
                    ready.add(name)
                    if len(ready) == len(roles):
                        recorder.start_training()
                        log.info("all %d roles ready, training started", len(roles))
                elif msg.kind == Kind.ROUND_DONE:
                    last_round = max(last_round, msg.round)
                    if stop_sent_at is not None:  # still making progress towards the final round
                        stop_sent_at = time.monotonic()
                    if msg.role == Role.GENERATOR:
                        recorder.generator(msg.slot, msg.round, *msg.values)
                    elif msg.role == Role.DISCRIMINATOR:
                        recorder.discriminator(msg.round, msg.values[0])
                    else:
                        recorder.classifier(msg.round, msg.values[0])
                elif msg.kind == Kind.EVAL_READY:
                    seconds = eval_ready.setdefault(msg.round, [])
                    seconds.append(msg.values[0])
                    if len(seconds) == config.k:
                        samples = buf.eval_sample.clone()
                        for k in range(config.k):
                            outbox.send(f"generator-{k}", Kind.EVAL_RELEASED, k, msg.round)
                        recorder.evaluate(msg.round, samples, max(eval_ready.pop(msg.round)), metrics_overlap_training=True)
                elif msg.kind == Kind.FINISHED:
                    outbox.send(name, Kind.DISMISSED)
                elif msg.kind == Kind.CHECKPOINT_SAVED:
                    saved[msg.round] = saved.get(msg.round, 0) + 1
                    if stop_sent_at is not None:
                        stop_sent_at = time.monotonic()
                    if saved[msg.round] == len(roles):
                        checkpoint.finalize(run_dir, msg.round, roles, config.keep_checkpoints)
                        recorder.write()
            inbox.pending.clear()
            for name, code in group.reap():
                if code == 0:
                    finished.add(name)
                elif failure is None:
                    failure = RoleFailed(name, code, group.logs[name])
            if failure is not None:
                break
            now = time.monotonic()
            if len(ready) < len(roles) and now > deadline:
                missing = ", ".join(sorted(set(roles) - ready))
                failure = RoleFailed(missing, None, None, f"{missing} did not start within {config.startup_timeout:g} s")
                break
            if stop.requested and len(ready) < len(roles):
                log.info("stop requested during start-up; no round ran, nothing to checkpoint")
                break
            if stop.requested and stop_sent_at is None:
                outbox.send("discriminator", Kind.STOP)
                stop_sent_at = now
                log.info("stop requested; D makes the next round the last")
            if stop_sent_at is not None and now - stop_sent_at > STOP_GRACE:
                failure = RoleFailed("roles", None, None, f"{', '.join(group.running())} did not stop within {STOP_GRACE:g} s")
                break
            if stop.hard:  # a second Ctrl-C: stop now; the last periodic checkpoint is what remains
                log.info("second interrupt: stopping without a final checkpoint")
                break
    finally:
        try:
            group.shutdown(ABORT_GRACE, ask=lambda: [outbox.send(r, Kind.ABORT, required=False) for r in roles])
        finally:
            for part in (inbox, outbox):
                if part is not None:
                    part.close()
            context.term()
            endpoints.cleanup()
        del buf
    if failure is not None:
        raise failure
    return last_round
