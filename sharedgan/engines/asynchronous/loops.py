"""The child side of the asynchronous engine (``--engine async``): no lock-step rounds.

  generator k   write slot k ─SAMPLE_READY→ runner ... wait VALIDATION_READY from a D and a C
                process, update ─ROUND_DONE→ runner, next round at once
  runner        hands each ready slot to a *free* D process and a free C process (a FIFO queue
                when all are busy, see asynchronous.supervisor.Dispatcher): ─SERVE(k, n)→
  D process     validate slot k with its D as it is now ─VALIDATION_READY→ generator k, update on
                it ─DONE→ runner (which makes the process free again)
  C process     copy slot k into its cache of every generator's latest batch, update head k on
                the cached others against it, score it ─VALIDATION_READY→ k ─DONE→ runner

A generator may overwrite its slot as soon as both validations are in: D scores a private copy
of the slot and C its cache, so neither reads the slot after it answered.

Replicas (``--d-replicas R``, ``--c-replicas R``) keep in step through the buffer's parameter
region (runtime.buffer.ParameterRegion): ``copy`` — the primary publishes every ``--sync-every`` of its
steps and a replica loads the newest copy every ``--sync-every`` of its own; ``hogwild`` — every
replica's parameters *are* the shared ones, each replica steps its own optimiser on them.

Checkpoints are barriers: a generator that saved round n waits for BEGIN(n + 1); the runner asks
the D and C primaries to SAVE(n) once every generator saved n and nothing is in flight. A STOP
goes to every generator; each answers HALTED(n) after its current round and starts no other until
the runner names the final round F = the largest n (FINAL(F)); those behind run up to F. D and C
processes END when the final checkpoint is complete.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

from sharedgan.config import TrainConfig
from sharedgan.engines import checkpoint_due, eval_due
from sharedgan.engines.parallel.links import Links, run_rounds
from sharedgan.roles.base import RoleState
from sharedgan.roles.classifier import SampleCache
from sharedgan.roles.discriminator import DiscriminatorRole
from sharedgan.roles.generator import GeneratorRole
from sharedgan.runtime.buffer import ParameterRegion, SlotBuffer
from sharedgan.runtime.messages import Kind, Role


def generator_loop(config: TrainConfig, run_dir: Path, buf: SlotBuffer, links: Links, role: GeneratorRole) -> None:
    k, two = role.k, config.k > 1
    last_eval: list[int] = []
    stop_at: int | None = None  # the final round, once the runner named it

    def from_runner(kind: Kind, round_index: int | None = None):
        return lambda m: m.matches(kind, Role.RUNNER, None, round_index)

    def halt(n: int) -> None:
        """Tell the runner this generator stopped after round n; wait for it to name the final round."""
        nonlocal stop_at
        links.send("runner", Kind.HALTED, k, n)
        stop_at = links.mailbox.wait(from_runner(Kind.FINAL), "the final round", math.inf).round

    def wait_or_halt(wanted, what: str, n: int, halted=lambda: False) -> None:
        """Every wait after round n's update: a STOP that arrives meanwhile is answered at once
        (the runner names the final round only when every generator answered, and a generator
        ahead may be waiting here for one behind); ``halted``: whether that ends the wait. No
        timeout: the leaders wait for the laggards, however slow; a hung peer is the runner's
        business (heartbeats)."""
        while True:
            msg = links.mailbox.wait(lambda m: wanted(m) or (stop_at is None and m.matches(Kind.STOP, Role.RUNNER)),
                                     what, math.inf)
            if msg.kind != Kind.STOP:
                return
            halt(n)
            if halted():
                return

    def evaluate(n: int) -> None:
        if last_eval:  # the runner copies the previous evaluation out before this one overwrites it
            previous = last_eval.pop()
            wait_or_halt(lambda m: m.matches(Kind.EVAL_RELEASED, Role.RUNNER, k, previous), "EVAL_RELEASED", n)
        links.write_eval(buf, role, n)
        last_eval.append(n)

    def one_round(n: int) -> bool:
        if n == links.first_round:
            last_eval.clear()
        role.write_sample(buf, n)
        links.send("runner", Kind.SAMPLE_READY, k, n)
        links.wait(Kind.VALIDATION_READY, Role.DISCRIMINATOR, k, n)
        if two:
            links.wait(Kind.VALIDATION_READY, Role.CLASSIFIER, k, n)
        links.send("runner", Kind.ROUND_DONE, k, n, role.update(buf, n))
        links.mailbox.drain()
        if stop_at is None and links.mailbox.take(from_runner(Kind.STOP)) is not None:
            halt(n)
        evaluated = eval_due(config, n, n in (config.rounds - 1, stop_at))
        if evaluated:
            evaluate(n)  # (a stop may be answered in there)
        final = n in (config.rounds - 1, stop_at)
        if final and not evaluated:
            evaluate(n)
        if checkpoint_due(config, n, final):
            links.save_checkpoint(run_dir, role, n)
            if not final:  # the barrier: D and C save round n too, then BEGIN(n + 1)
                running = stop_at is None
                wait_or_halt(from_runner(Kind.BEGIN, n + 1), f"BEGIN of round {n + 1}", n, lambda: stop_at is not None)
                if running and stop_at is not None:  # a stop during the barrier (no BEGIN follows a STOP):
                    if stop_at != n:  # every generator is at round n or before it, so n is the last
                        raise RuntimeError(f"{role.name}: final round {stop_at} lies past the barrier at round {n}")
                    final = True
                    if not evaluated:
                        evaluate(n)
        return final

    run_rounds(links, role, buf, one_round)


def step_lr_scale(config: TrainConfig, slots: int) -> float:
    """``--serve-lr-scaling``: the learning-rate factor of a D or C step on ``slots`` slots. A step
    on g slots is one step on a g-times larger batch; with Adam its size barely grows with the batch,
    so g single-slot steps move the parameters about √g times as far: sqrt makes up for that."""
    return math.sqrt(slots) if config.serve_lr_scaling == "sqrt" else 1.0


def server_loop(config: TrainConfig, run_dir: Path, buf: SlotBuffer, links: Links, role: RoleState,
                replica: int, region: ParameterRegion | None) -> None:
    """A D or C process: serve whatever slot the runner hands it, until END."""
    primary = replica == 0

    def lr_scale(jobs: list) -> float:
        return step_lr_scale(config, len(jobs))

    if isinstance(role, DiscriminatorRole):
        def serve(jobs: list[tuple[int, int]]) -> float:
            role.validate_slots(buf, jobs)
            for k, n in jobs:
                links.send(f"generator-{k}", Kind.VALIDATION_READY, k, n)
            return role.update_slots(jobs, lr_scale(jobs))
    else:
        cache = SampleCache(buf.num_slots, tuple(buf.sample.shape[1:]), buf.sample.device)

        def serve(jobs: list[tuple[int, int]]) -> float:
            loss = role.serve_slots(buf, jobs, cache, lr_scale(jobs))
            for k, n in jobs:
                links.send(f"generator-{k}", Kind.VALIDATION_READY, k, n)
            return loss

    sync: Callable[[], object] | None = None
    if region is not None and config.replica_sync == "copy":
        sync = (lambda: region.publish(role.net)) if primary else (lambda: region.pull(role.net))
    n0 = links.begin(links.epoch)
    role.rejoin(buf, n0)
    steps = 0

    def from_runner(*kinds: Kind):
        return lambda m: m.role == Role.RUNNER and m.kind in kinds

    while True:
        start, waited, copied = time.perf_counter(), links.mailbox.waited, role.copy_seconds
        # an idle replica may wait as long as the generators keep the others busy: no timeout here
        # (a hung peer is the runner's business: heartbeats)
        msg = links.mailbox.wait(from_runner(Kind.SERVE, Kind.SAVE, Kind.END), "work from the runner", math.inf)
        if msg.kind == Kind.END:
            return
        if msg.kind == Kind.SAVE:
            links.save_checkpoint(run_dir, role, msg.round)
            continue
        jobs = [(msg.slot, msg.round)]
        while len(jobs) < int(msg.values[0]):  # the rest of this step's slots, sent right behind
            more = links.mailbox.wait(from_runner(Kind.SERVE), "the rest of a step", config.signal_timeout)
            jobs.append((more.slot, more.round))
        loss = serve(jobs)
        steps += 1
        if sync is not None and steps % config.sync_every == 0:
            sync()
        wait, copy = links.mailbox.waited - waited, role.copy_seconds - copied
        compute = time.perf_counter() - start - wait - copy
        for k, n in jobs:  # the step's seconds are shared out over its slots' rounds
            links.send("runner", Kind.DONE, links.outbox.slot, n,
                       (k, loss, compute / len(jobs), wait / len(jobs), copy / len(jobs)))


def build_server(name: str, config: TrainConfig, role: RoleState, region_handle) -> tuple[int, ParameterRegion | None]:
    """Name a replica's role after it and bind it to its parameter region (hogwild). Returns the
    replica number and the region."""
    base, _, index = name.partition("-")
    replica = int(index) if index else 0
    role.name = name
    region = ParameterRegion.attach(region_handle) if region_handle is not None else None
    if region is not None and config.replica_sync == "hogwild":
        region.bind(role.net)
    return replica, region

