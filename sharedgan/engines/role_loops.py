"""The child side of the parallel engine: one loop per role, and the entry point of every child.

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

Life of a role: build the models (from a checkpoint when resuming or respawned) ─READY→ runner,
wait BEGIN(n0), run rounds n0, n0+1, ... A RESYNC from the runner (a peer died and is being
respawned) interrupts any wait: the role drops the round it was in ─RESYNC_ACK(n)→ runner and
waits for a new BEGIN(R), R past every round anyone started, so no stale message can match.
Every wait sends a HEARTBEAT about once a second; a role that stops sending them is hung.

ROUND_DONE values: generator (J^{G_k}, β_k, D term, C term); D (mean −J^D); C (mean C loss).
A role that finished says FINISHED and exits only when the runner DISMISSED it, so the runner has
processed every message of that role (one pipe keeps order) before the role's sockets go.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Callable

import torch
import zmq

from .. import checkpoint, devices
from ..buffer import ParameterRegion, SlotBuffer
from ..config import TrainConfig
from ..roles import Diverged, RoleState, dataset_of, model_spec
from ..roles.classifier import ClassifierRole
from ..roles.discriminator import DiscriminatorRole
from ..roles.generator import GeneratorRole, make_body, take_body_gradient
from ..rundir import log_path
from ..runner import prepare_child
from ..signals import Aborted, Endpoints, Kind, Mailbox, Outbox, Resync, Role
from . import checkpoint_due, eval_due, mean

log = logging.getLogger("sharedgan")

EXIT_ABORTED, EXIT_DIVERGED, EXIT_WRITE_FAILED = 3, 4, 5
FINAL_LINGER_MS = 1000  # bounded: a normal exit never waits longer than this on a dead peer


class Links:
    """A role's view of the control plane."""

    def __init__(self, mailbox: Mailbox, outbox: Outbox, config: TrainConfig, watchdog: Callable[[], None]):
        self.mailbox, self.outbox, self.config, self.watchdog = mailbox, outbox, config, watchdog
        self.beat_every = min(1.0, config.heartbeat_timeout / 4)
        self.next_beat = 0.0
        self.first_round = 0
        self.epoch = 0  # a respawned role starts in the epoch of the resync that brought it back
        self.devices: tuple = ()  # the role's and the buffer's: CUDA work on them is settled before a signal
        self.aside = 0.0  # seconds of this round spent on another role's work (C's, in D's process), not this role's
        mailbox.watchdog = self.tick

    def tick(self) -> None:
        """Called on every poll slice of every wait: exit if the parent died; beat."""
        self.watchdog()
        now = time.monotonic()
        if now >= self.next_beat:
            self.outbox.send("runner", Kind.HEARTBEAT, self.outbox.slot, required=False)
            self.next_beat = now + self.beat_every

    def send(self, to: str, kind: Kind, slot: int = -1, round: int = -1, values=(), as_role: Role | None = None):
        devices.settle(*self.devices)  # what this role wrote into the buffer is there before a peer hears of it
        self.outbox.send(to, kind, slot, round, values, as_role=as_role)

    def wait(self, kind: Kind, role: Role, slot: int | None, round_index: int):
        # the first round after a (re)start also waits for peers that are still building models
        first = round_index == self.first_round
        timeout = self.config.startup_timeout if first else self.config.signal_timeout
        return self.mailbox.wait_for(kind, role, slot, round_index, timeout)

    def begin(self, epoch: int = 0, dropped: int | None = None) -> int:
        """Wait for the runner's BEGIN of ``epoch`` and return its round. After a RESYNC,
        ``dropped`` is the round this role abandoned; it is acknowledged first."""
        while True:
            if dropped is not None:
                self.send("runner", Kind.RESYNC_ACK, self.outbox.slot, dropped, (epoch,))
            try:
                msg = self.mailbox.wait(lambda m: m.matches(Kind.BEGIN, Role.RUNNER) and m.values[0] == epoch,
                                        f"BEGIN of epoch {epoch}", self.config.startup_timeout)
            except Resync as exc:  # a peer died before this role even began: acknowledge, wait again
                epoch, dropped = exc.epoch, self.first_round - 1 if dropped is None else dropped
                continue
            self.mailbox.forget_before(msg.round)
            self.first_round = msg.round
            return msg.round


def run_rounds(links: Links, role: RoleState, buf: SlotBuffer, one_round: Callable[[int], bool]) -> None:
    """Rounds from BEGIN until ``one_round`` says it ran the final one; a RESYNC restarts the
    current round at the runner's new BEGIN."""
    n = links.begin(links.epoch)
    role.rejoin(buf, n)
    while True:
        try:
            links.tick()
            start, waited, copied = time.perf_counter(), links.mailbox.waited, role.copy_seconds
            final = one_round(n)
            wait, copy = links.mailbox.waited - waited, role.copy_seconds - copied
            compute = time.perf_counter() - start - wait - copy - links.aside
            links.aside = 0.0
            links.send("runner", Kind.TIMES, links.outbox.slot, n, (compute, wait, copy))
            if final:
                return
            n += 1
        except Resync as exc:
            log.info("%s: a peer was restarted; dropping round %d", role.name, n)
            n = links.begin(exc.epoch, dropped=n)
            role.rejoin(buf, n)


def _generator(config: TrainConfig, run_dir: Path, buf: SlotBuffer, links: Links, role: GeneratorRole,
               body_grads: torch.Tensor | None = None) -> None:
    k, two, c_process = role.k, config.k > 1, "classifier" in config.processes
    last_eval: list[int] = []  # the previous evaluation the runner has to copy out first

    def one_round(n: int) -> bool:
        if n == links.first_round:
            last_eval.clear()
        role.write_sample(buf, n)
        links.send("discriminator", Kind.SAMPLE_READY, k, n)
        if c_process:  # (with --shared-trunk C runs in D's process: D's signal serves both)
            links.send("classifier", Kind.SAMPLE_READY, k, n)
        links.wait(Kind.VALIDATION_READY, Role.DISCRIMINATOR, k, n)
        if two:
            links.wait(Kind.VALIDATION_READY, Role.CLASSIFIER, k, n)
        links.send("runner", Kind.ROUND_DONE, k, n, role.update(buf, n))
        if body_grads is not None:
            _step_shared_body(links, role, body_grads, n)
        final = links.wait(Kind.RELEASED, Role.DISCRIMINATOR, k, n).values[0] > 0.5
        if eval_due(config, n, final):
            if last_eval:
                links.wait(Kind.EVAL_RELEASED, Role.RUNNER, k, last_eval.pop())
            t0 = time.perf_counter()
            role.write_eval(buf, n)
            links.send("runner", Kind.EVAL_READY, k, n, (time.perf_counter() - t0,))
            last_eval.append(n)
        if checkpoint_due(config, n, final):
            checkpoint.save_role(run_dir, n, role.name, role.state_dict(n))
            links.send("runner", Kind.CHECKPOINT_SAVED, k, n)
        if final:
            return True
        if two:
            links.wait(Kind.RELEASED, Role.CLASSIFIER, k, n)
        return False

    run_rounds(links, role, buf, one_round)


def _step_shared_body(links: Links, role: GeneratorRole, grads: torch.Tensor, n: int) -> None:
    """--share-generator-body: put this generator's body gradient in its row; generator 0 waits for
    every row, steps the body (roles.generator.SharedBody) and says so; the others wait for that,
    so no generator runs the body again before round n's step."""
    k, K = role.k, links.config.k
    take_body_gradient(role.net.body, grads, k)
    if k == 0:
        for j in range(1, K):
            links.wait(Kind.BODY_GRAD, Role.GENERATOR, j, n)
        role.body.apply(grads, n)
        for j in range(1, K):
            links.send(f"generator-{j}", Kind.BODY_STEPPED, 0, n)
    else:
        links.send("generator-0", Kind.BODY_GRAD, k, n)
        links.wait(Kind.BODY_STEPPED, Role.GENERATOR, 0, n)


def _discriminator(config: TrainConfig, run_dir: Path, buf: SlotBuffer, links: Links, role: DiscriminatorRole) -> None:
    d_round = _discriminator_round(config, run_dir, buf, links, role)
    if role.partner is None:
        run_rounds(links, role, buf, d_round)
        return
    # --shared-trunk: C is a head on D's trunk and runs here, after D's K slots, as in the
    # sequential engine; its signals go out signed as C's, so generators and runner see no change
    c_send = partial(links.send, as_role=Role.CLASSIFIER)

    def one_round(n: int) -> bool:
        final = d_round(n)
        start, copied = time.perf_counter(), role.partner.copy_seconds
        _serve_classifier(config, run_dir, buf, c_send, role.partner, n, final)
        spent, copy = time.perf_counter() - start, role.partner.copy_seconds - copied
        links.aside += spent  # C's time is C's, not D's
        c_send("runner", Kind.TIMES, -1, n, (spent - copy, 0.0, copy))
        _save_discriminator(config, run_dir, links, role, n, final)  # after C's steps moved the trunk
        return final

    run_rounds(links, role, buf, one_round)


def _discriminator_round(config: TrainConfig, run_dir: Path, buf: SlotBuffer, links: Links,
                         role: DiscriminatorRole) -> Callable[[int], bool]:
    stop_requested = False

    def one_round(n: int) -> bool:
        nonlocal stop_requested
        links.mailbox.drain()
        stop_requested |= links.mailbox.take(lambda m: m.kind == Kind.STOP) is not None
        final = n == config.rounds - 1 or stop_requested
        losses = []
        for k in range(config.k):
            links.wait(Kind.SAMPLE_READY, Role.GENERATOR, k, n)
            role.validate(buf, k, n)
            links.send(f"generator-{k}", Kind.VALIDATION_READY, k, n)
            losses.append(role.update(k, n))
            links.send(f"generator-{k}", Kind.RELEASED, k, n, (1.0 if final else 0.0,))
        links.send("runner", Kind.ROUND_DONE, -1, n, (mean(losses),))
        # a C process of its own knows the planned last round itself, not an early one
        if final and config.k > 1 and n < config.rounds - 1 and role.partner is None:
            links.send("classifier", Kind.FINAL, -1, n)
        if role.partner is None:
            _save_discriminator(config, run_dir, links, role, n, final)
        return final

    return one_round


def _save_discriminator(config: TrainConfig, run_dir: Path, links: Links, role: DiscriminatorRole, n: int, final: bool) -> None:
    if checkpoint_due(config, n, final):
        checkpoint.save_role(run_dir, n, role.name, role.state_dict(n))
        links.send("runner", Kind.CHECKPOINT_SAVED, -1, n)


def _classifier(config: TrainConfig, run_dir: Path, buf: SlotBuffer, links: Links, role: ClassifierRole) -> None:
    K = config.k

    def one_round(n: int) -> bool:
        arrived: set[int] = set()
        while len(arrived) < K:
            first = n == links.first_round
            msg = links.mailbox.wait(
                lambda m: m.matches(Kind.SAMPLE_READY, Role.GENERATOR, None, n) or m.matches(Kind.FINAL, Role.DISCRIMINATOR, None, n - 1),
                f"samples of round {n}", config.startup_timeout if first else config.signal_timeout)
            if msg.kind == Kind.FINAL:  # D ended training after round n − 1
                if not checkpoint_due(config, n - 1, False):
                    checkpoint.save_role(run_dir, n - 1, role.name, role.state_dict(n - 1))
                    links.send("runner", Kind.CHECKPOINT_SAVED, -1, n - 1)
                return True
            arrived.add(msg.slot)
        final = n == config.rounds - 1
        _serve_classifier(config, run_dir, buf, links.send, role, n, final)
        return final

    run_rounds(links, role, buf, one_round)


def _serve_classifier(config: TrainConfig, run_dir: Path, buf: SlotBuffer, send: Callable, role: ClassifierRole,
                      n: int, final: bool) -> None:
    """C's part of round n once every slot holds it: serve each slot, release the generators (on a
    final round they exit without waiting for it), report, checkpoint when due."""
    losses = []
    for k in range(config.k):
        losses.append(role.serve_slot(buf, k, n))
        send(f"generator-{k}", Kind.VALIDATION_READY, k, n)
    if not final:
        for k in range(config.k):
            send(f"generator-{k}", Kind.RELEASED, k, n)
    send("runner", Kind.ROUND_DONE, -1, n, (mean(losses),))
    if checkpoint_due(config, n, final):
        checkpoint.save_role(run_dir, n, role.name, role.state_dict(n))
        send("runner", Kind.CHECKPOINT_SAVED, -1, n)


def _build(name: str, config: TrainConfig, device: torch.device, regions: dict) -> tuple[RoleState, Callable, Role, int, list[str]]:
    """The role object, its loop, and whom it talks to."""
    generators = [f"generator-{j}" for j in range(config.k)]
    classifier = ["classifier"] if "classifier" in config.processes else []
    asynchronous = config.engine == "async"
    from . import async_loops  # (it builds on this module's Links)
    if name.startswith("generator-"):
        k = int(name.split("-")[1])
        spec = model_spec(config)
        if "generator-body" not in regions:
            role = GeneratorRole(config, spec, k, device)
            if asynchronous:
                return role, async_loops.generator_loop, Role.GENERATOR, k, ["runner"]
            return role, _generator, Role.GENERATOR, k, ["runner", "discriminator"] + classifier
        # --share-generator-body: the body's parameters are views of the buffer's parameter region
        values, version, grads = regions["generator-body"]
        body = make_body(config, spec).to(device)
        ParameterRegion(values, version, buffers=False).bind(body)
        role = GeneratorRole(config, spec, k, device, body)
        peers = generators if k == 0 else ["generator-0"]
        return role, partial(_generator, body_grads=grads), Role.GENERATOR, k, ["runner", "discriminator"] + classifier + peers
    if name.startswith("discriminator"):
        dataset = dataset_of(config)
        spec = model_spec(config, dataset)
        role, kind, loop, peers = (DiscriminatorRole(config, spec, dataset, device), Role.DISCRIMINATOR,
                                   _discriminator, ["runner"] + generators + classifier)
        if config.shared_trunk and config.k > 1:
            role.partner = ClassifierRole(config, spec, device, role.net)
    else:
        role, kind, loop, peers = ClassifierRole(config, model_spec(config), device), Role.CLASSIFIER, _classifier, ["runner"] + generators
    if not asynchronous:
        return role, loop, kind, -1, peers
    replica, region = async_loops.build_server(name, config, role, regions.get(name.partition("-")[0]))

    def serve(config, run_dir, buf, links, role):
        async_loops.server_loop(config, run_dir, buf, links, role, replica, region)
    return role, serve, kind, replica if replica else -1, ["runner"] + generators


def role_main(name: str, config_json: str, run_dir: str, buffer_handle: tuple, endpoint_spec: tuple,
              token: bytes, parent_pid: int, restore: str | None, epoch: int, regions: dict) -> None:
    """Entry point of every child process. ``restore``: a checkpoint to load this role's state
    from (a replica loads its primary's); ``epoch``: the resync it joins (0 at the start of a run);
    ``regions``: the parameter regions of replicated D and C (engine async), by role."""
    config = TrainConfig.from_dict(json.loads(config_json))
    watchdog = prepare_child(str(log_path(run_dir, name)), parent_pid, config.threads)
    log.info("%s started, pid %d%s", name, os.getpid(), f", restoring {restore}" if restore else "")
    context = zmq.Context()
    endpoints = Endpoints(*endpoint_spec)
    mailbox = outbox = None
    code, linger = 0, 0
    try:
        mailbox = Mailbox(context, endpoints.address(name), token, watchdog)
        device = devices.role_device(config, name)
        devices.prepare(config, device)
        role, loop, kind, slot, peers = _build(name, config, device, regions)
        outbox = Outbox(context, token, kind, slot, endpoints, peers)
        links = Links(mailbox, outbox, config, watchdog)
        links.devices = (device, devices.buffer_device(config))
        links.epoch = epoch
        if restore:
            for r in (role, role.partner) if getattr(role, "partner", None) else (role,):
                state = checkpoint.load_role(Path(restore), r.name if r.name in config.roles else r.name.partition("-")[0])
                r.load_state_dict(state)
            torch.set_rng_state(state["torch_rng"])
        buf = SlotBuffer.attach(buffer_handle)
        links.send("runner", Kind.READY, slot)
        try:
            loop(config, Path(run_dir), buf, links, role)
        except Diverged as exc:
            log.error("%s", exc)
            signer = Role.CLASSIFIER if exc.role == "classifier" else None  # C in D's process (--shared-trunk)
            links.send("runner", Kind.DIVERGED, slot, exc.round, (exc.code,), as_role=signer)
            code, linger = EXIT_DIVERGED, FINAL_LINGER_MS
        except checkpoint.WriteFailed as exc:
            log.error("%s", exc)
            links.send("runner", Kind.WRITE_FAILED, slot, exc.round, (exc.errno,))
            code, linger = EXIT_WRITE_FAILED, FINAL_LINGER_MS
        else:
            links.send("runner", Kind.FINISHED, slot)
            mailbox.wait_for(Kind.DISMISSED, Role.RUNNER, timeout=config.signal_timeout)
            linger = FINAL_LINGER_MS  # its last signals (FINAL, RELEASED) reach peers still reading
            log.info("%s finished", name)
    except Aborted:
        log.info("%s aborted by the runner", name)
        code = EXIT_ABORTED
    except BaseException:  # noqa: BLE001 - every failure must reach the log, then the runner
        traceback.print_exc()
        code, linger = 1, 0
    finally:
        if mailbox is not None:
            mailbox.close()
        if outbox is not None:
            outbox.close(linger_ms=linger)
        context.term()
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)
