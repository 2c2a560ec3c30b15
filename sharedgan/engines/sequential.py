"""The sequential baseline: every role's step in one process, in the order of Algorithm 1.

It is the reference the parallel engine must reproduce, and a fair baseline: the same role
steps on the same buffer layout, no IPC, no waits.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch

from sharedgan.config import TrainConfig
from sharedgan.engines import checkpoint_due, eval_due, mean, publish_checkpoint
from sharedgan.engines.recorder import RunRecorder
from sharedgan.roles.build import model_spec
from sharedgan.roles.classifier import ClassifierRole
from sharedgan.roles.discriminator import DiscriminatorRole
from sharedgan.roles.generator import GeneratorRole, make_body, take_body_gradient
from sharedgan.roles.teacher import TeacherRole
from sharedgan.runtime import devices
from sharedgan.runtime.buffer import SlotBuffer, fields_of
from sharedgan.storage import checkpoint

log = logging.getLogger("sharedgan")


def run(config: TrainConfig, run_dir: Path, recorder: RunRecorder, stop, start: int = 0,
        restore: Path | None = None) -> int:
    """Train rounds ``start``.. (from checkpoint ``restore`` when resuming); return the last round
    run (the round that starts after a stop request is the last)."""
    threads_before, deterministic_before = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(config.threads)
    devices.prepare(config, devices.buffer_device(config))
    try:
        return _train(config, run_dir, recorder, stop, start, restore)
    finally:  # the caller's process is left as it was (denormal flushing: torch's default, off)
        torch.set_num_threads(threads_before)
        torch.use_deterministic_algorithms(deterministic_before)
        torch.set_flush_denormal(False)


class StepClock:
    """The time breakdown of one process running every role: each role's steps are timed apart;
    its copies into and out of slots are counted by the role itself; nothing ever waits."""

    def __init__(self, roles):
        self.roles = roles
        self.seconds = {role.name: 0.0 for role in roles}
        self.copied = {role.name: role.copy_seconds for role in roles}

    @contextmanager
    def __call__(self, role):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[role.name] += time.perf_counter() - start

    def report(self, recorder: RunRecorder, round_index: int) -> None:
        for role in self.roles:
            copy = role.copy_seconds - self.copied[role.name]
            recorder.times(role.name.split("-")[0], getattr(role, "k", -1), round_index,
                           self.seconds[role.name] - copy, 0.0, copy)
            self.seconds[role.name], self.copied[role.name] = 0.0, role.copy_seconds


def _critic_round(role, buf: SlotBuffer, n: int, batched: bool) -> float:
    """D's (or D_T's) part of round n: validate then update on each slot in turn (Algorithm 1), or
    on all K at once (engine batched); its mean loss."""
    if batched:
        role.validate_all(buf, n)
        return role.update_all(n)
    losses = []
    for k in range(buf.num_slots):
        role.validate(buf, k, n)
        losses.append(role.update(k, n))
    return mean(losses)


def _train(config: TrainConfig, run_dir: Path, recorder: RunRecorder, stop, start: int, restore: Path | None) -> int:
    spec = model_spec(config, recorder.dataset)
    buf = SlotBuffer.allocate(fields_of(config, spec.sample_shape), config.k,
                              devices.buffer_device(config), shared=False)
    recorder.slot_buffer_bytes = buf.nbytes
    place = partial(devices.role_device, config)
    body = make_body(config, spec).to(place("generator-0")) if config.share_generator_body else None
    generators = [GeneratorRole(config, spec, k, place(f"generator-{k}"), body) for k in range(config.k)]
    body_grads = torch.zeros(config.k, generators[0].body.gradient_size()) if body is not None else None
    disc = DiscriminatorRole(config, spec, recorder.dataset, place("discriminator"))
    trunk = disc.net if config.shared_trunk else None
    clf = ClassifierRole(config, spec, place("classifier"), trunk) if config.k > 1 else None
    teacher = TeacherRole(config, spec, recorder.dataset, place("teacher")) if config.teacher_weight else None
    roles = generators + [disc] + ([clf] if clf else []) + ([teacher] if teacher else [])
    if restore is not None:
        for role in roles:
            state = checkpoint.load_role(restore, role.name)
            role.load_state_dict(state)
        torch.set_rng_state(state["torch_rng"])  # one process: every role saved the same global RNG
    for role in roles:
        role.rejoin(buf, start)
    recorder.start_training()
    log.info("training started at round %d", start)
    n = start - 1
    clock = StepClock(roles)
    batched = config.engine == "batched"
    for n in range(start, config.rounds):
        final = n == config.rounds - 1 or stop.requested
        for g in generators:
            with clock(g):
                g.write_sample(buf, n)
        with clock(disc):
            d_loss = _critic_round(disc, buf, n, batched)
        recorder.discriminator(n, d_loss)
        if clf is not None:
            with clock(clf):
                c_loss = (clf.serve_all(buf, n) if batched
                          else mean([clf.serve_slot(buf, k, n) for k in range(config.k)]))
            recorder.classifier(n, c_loss)
        if teacher is not None:
            with clock(teacher):
                t_loss = _critic_round(teacher, buf, n, batched)
                nll = teacher.end_round(buf, n)
            recorder.teacher(n, nll, t_loss)
        for g in generators:
            with clock(g):
                stats = g.update(buf, n)
                if body is not None:
                    take_body_gradient(body, body_grads, g.k)
            recorder.generator(g.k, n, *stats)
        if body is not None:
            with clock(generators[0]):
                generators[0].body.apply(body_grads, n)
        if eval_due(config, n, final):
            t0 = time.perf_counter()
            for g in generators:
                with clock(g):
                    g.write_eval(buf, n)
            recorder.evaluate(n, buf.eval_sample.cpu(), time.perf_counter() - t0)
        clock.report(recorder, n)
        if checkpoint_due(config, n, final):
            for role in roles:
                checkpoint.save_role(run_dir, n, role.name, role.state_dict(n))
            publish_checkpoint(config, run_dir, n, recorder)
        if final:
            break
    return n

