"""The child side of the parallel engine: one loop per role, lock-step rounds.

Per round n (Algorithm 1), with every wait bounded by a timeout:

  generator k   write slot k ─SAMPLE_READY→ D, C ... wait VALIDATION_READY from D (it says whether
                n is final) and C, update, ─ROUND_DONE→ runner, [evaluation, checkpoint], next round
  D             for k = 0..K−1: wait SAMPLE_READY k, validate ─VALIDATION_READY(final?)→ k, update;
                ─ROUND_DONE→ runner; on the final round ─FINAL→ C
  C             wait all K samples (or FINAL of round n−1), copy them out; for k = 0..K−1: update,
                validate ─VALIDATION_READY→ k; ─ROUND_DONE→ runner
  T (HGAN)      for k = 0..K−1: wait SAMPLE_READY k (or FINAL of round n−1), D_T validates
                ─VALIDATION_READY→ k, D_T updates; T's own step, next teacher batches; ─ROUND_DONE→ runner

A VALIDATION_READY also releases the slot: D, C and T read slot k's batch for the last time before
they send it (D and D_T score a private copy and update on that; C serves all K slots from the copy
it took at the start of its round), so generator k writes its next batch right after its update,
while C still serves the slots after k.

D is the one role that decides when training ends: the round it starts after a STOP from the
runner (or the last planned round) is final, and it stamps that on its VALIDATION_READY messages,
so all roles stop after the same round and the final checkpoint is consistent.

Life of a role: build the models (from a checkpoint when resuming or respawned) ─READY→ runner,
wait BEGIN(n0), run rounds n0, n0+1, ... A RESYNC from the runner (a peer died and is being
respawned) interrupts any wait: the role drops the round it was in ─RESYNC_ACK(n)→ runner and
waits for a new BEGIN(R), R past every round anyone started, so no stale message can match.
Every wait sends a HEARTBEAT about once a second; a role that stops sending them is hung.

ROUND_DONE values: generator (J^{G_k}, β_k, D term, C term, T term); D (mean −J^D); C (mean C loss);
T (its NLL of the round's real batch, NaN for a fixed teacher; D_T's mean loss).
A role that finished says FINISHED and exits only when the runner DISMISSED it, so the runner has
processed every message of that role (one pipe keeps order) before the role's sockets go.
"""
from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path
from typing import Callable

import torch

from sharedgan.config import TrainConfig
from sharedgan.engines import checkpoint_due, eval_due, mean
from sharedgan.engines.parallel.links import Links, run_rounds
from sharedgan.roles.classifier import ClassifierRole
from sharedgan.roles.discriminator import DiscriminatorRole
from sharedgan.roles.generator import GeneratorRole, take_body_gradient
from sharedgan.roles.teacher import TeacherRole
from sharedgan.runtime.buffer import SlotBuffer
from sharedgan.runtime.messages import Kind, Role

log = logging.getLogger("sharedgan")


def generator_loop(config: TrainConfig, run_dir: Path, buf: SlotBuffer, links: Links, role: GeneratorRole,
               body_grads: torch.Tensor | None = None) -> None:
    k, two, c_process = role.k, config.k > 1, "classifier" in config.processes
    teacher = "teacher" in config.processes
    last_eval: list[int] = []  # the previous evaluation the runner has to copy out first

    def one_round(n: int) -> bool:
        if n == links.first_round:
            last_eval.clear()
        role.write_sample(buf, n)
        links.send("discriminator", Kind.SAMPLE_READY, k, n)
        if c_process:  # (with --shared-trunk C runs in D's process: D's signal serves both)
            links.send("classifier", Kind.SAMPLE_READY, k, n)
        if teacher:
            links.send("teacher", Kind.SAMPLE_READY, k, n)
        final = links.wait(Kind.VALIDATION_READY, Role.DISCRIMINATOR, k, n).values[0] > 0.5
        if two:
            links.wait(Kind.VALIDATION_READY, Role.CLASSIFIER, k, n)
        if teacher:
            links.wait(Kind.VALIDATION_READY, Role.TEACHER, k, n)
        links.send("runner", Kind.ROUND_DONE, k, n, role.update(buf, n))
        if body_grads is not None:
            _step_shared_body(links, role, body_grads, n)
        if eval_due(config, n, final):
            if last_eval:
                links.wait(Kind.EVAL_RELEASED, Role.RUNNER, k, last_eval.pop())
            links.write_eval(buf, role, n)
            last_eval.append(n)
        if checkpoint_due(config, n, final):
            links.save_checkpoint(run_dir, role, n)
        return final

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


def discriminator_loop(config: TrainConfig, run_dir: Path, buf: SlotBuffer, links: Links,
                       role: DiscriminatorRole) -> None:
    d_round = _discriminator_round(config, run_dir, buf, links, role)
    if role.partner is None:
        run_rounds(links, role, buf, d_round)
        return
    # --shared-trunk: C is a head on D's trunk and runs here, after D's K slots, as in the
    # sequential engine; its signals go out signed as C's, so generators and runner see no change

    def one_round(n: int) -> bool:
        final = d_round(n)
        start, copied = time.perf_counter(), role.partner.copy_seconds
        _serve_classifier(config, run_dir, buf, links, role.partner, n, final, as_role=Role.CLASSIFIER)
        spent, copy = time.perf_counter() - start, role.partner.copy_seconds - copied
        links.aside += spent  # C's time is C's, not D's
        links.send("runner", Kind.TIMES, -1, n, (spent - copy, 0.0, copy), as_role=Role.CLASSIFIER)
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
            links.send(f"generator-{k}", Kind.VALIDATION_READY, k, n, (1.0 if final else 0.0,))
            losses.append(role.update(k, n))
        links.send("runner", Kind.ROUND_DONE, -1, n, (mean(losses),))
        # a C (or T) process of its own knows the planned last round itself, not an early one
        if final and n < config.rounds - 1:
            if config.k > 1 and role.partner is None:
                links.send("classifier", Kind.FINAL, -1, n)
            if config.teacher_weight:
                links.send("teacher", Kind.FINAL, -1, n)
        if role.partner is None:
            _save_discriminator(config, run_dir, links, role, n, final)
        return final

    return one_round


def _save_discriminator(config: TrainConfig, run_dir: Path, links: Links,
                        role: DiscriminatorRole, n: int, final: bool) -> None:
    if checkpoint_due(config, n, final):
        links.save_checkpoint(run_dir, role, n)


def classifier_loop(config: TrainConfig, run_dir: Path, buf: SlotBuffer, links: Links, role: ClassifierRole) -> None:
    K = config.k

    def one_round(n: int) -> bool:
        arrived: set[int] = set()
        while len(arrived) < K:
            first = n == links.first_round
            msg = links.mailbox.wait(
                lambda m: (m.matches(Kind.SAMPLE_READY, Role.GENERATOR, None, n)
                           or m.matches(Kind.FINAL, Role.DISCRIMINATOR, None, n - 1)),
                f"samples of round {n}", config.startup_timeout if first else config.signal_timeout)
            if msg.kind == Kind.FINAL:  # D ended training after round n − 1
                if not checkpoint_due(config, n - 1, False):
                    links.save_checkpoint(run_dir, role, n - 1)
                return True
            arrived.add(msg.slot)
        final = n == config.rounds - 1
        _serve_classifier(config, run_dir, buf, links, role, n, final)
        return final

    run_rounds(links, role, buf, one_round)


def _serve_classifier(config: TrainConfig, run_dir: Path, buf: SlotBuffer, links: Links, role: ClassifierRole,
                      n: int, final: bool, as_role: Role | None = None) -> None:
    """C's part of round n once every slot holds it: copy the K batches out, serve each slot (its
    VALIDATION_READY releases it), report, checkpoint when due. ``as_role``: the signer of C's
    signals when C runs in D's process (--shared-trunk)."""
    send = partial(links.send, as_role=as_role)
    samples = role.take_round(buf, n)
    losses = []
    for k in range(config.k):
        losses.append(role.serve_slot(buf, k, n, samples))
        send(f"generator-{k}", Kind.VALIDATION_READY, k, n)
    send("runner", Kind.ROUND_DONE, -1, n, (mean(losses),))
    if checkpoint_due(config, n, final):
        links.save_checkpoint(run_dir, role, n, as_role=as_role)



def teacher_loop(config: TrainConfig, run_dir: Path, buf: SlotBuffer, links: Links, role: TeacherRole) -> None:
    """HGAN's T: D_T serves the slots in order as D does, then T steps and draws the next batches."""

    def one_round(n: int) -> bool:
        losses = []
        for k in range(config.k):
            timeout = config.startup_timeout if n == links.first_round else config.signal_timeout
            msg = links.mailbox.wait(
                lambda m: (m.matches(Kind.SAMPLE_READY, Role.GENERATOR, k, n)
                           or (k == 0 and m.matches(Kind.FINAL, Role.DISCRIMINATOR, None, n - 1))),
                f"slot {k} of round {n}", timeout)
            if msg.kind == Kind.FINAL:  # D ended training after round n − 1
                if not checkpoint_due(config, n - 1, False):
                    links.save_checkpoint(run_dir, role, n - 1)
                return True
            role.validate(buf, k, n)
            links.send(f"generator-{k}", Kind.VALIDATION_READY, k, n)
            losses.append(role.update(k, n))
        final = n == config.rounds - 1
        nll = role.end_round(buf, n, links.tick)
        links.send("runner", Kind.ROUND_DONE, -1, n, (nll, mean(losses)))
        if checkpoint_due(config, n, final):
            links.save_checkpoint(run_dir, role, n)
        return final

    run_rounds(links, role, buf, one_round)
