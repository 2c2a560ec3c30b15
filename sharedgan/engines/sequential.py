"""The sequential baseline: every role's step in one process, in the order of Algorithm 1.

It is the reference the parallel engine must reproduce, and a fair baseline: the same role
steps on the same buffer layout, no IPC, no waits.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from .. import checkpoint
from ..buffer import SlotBuffer, slot_fields
from ..config import TrainConfig
from ..record import RunRecorder
from ..roles import model_spec
from ..roles.classifier import ClassifierRole
from ..roles.discriminator import DiscriminatorRole
from ..roles.generator import GeneratorRole
from . import checkpoint_due, eval_due, mean

log = logging.getLogger("sharedgan")


def run(config: TrainConfig, run_dir: Path, recorder: RunRecorder, stop, start: int = 0,
        restore: Path | None = None) -> int:
    """Train rounds ``start``.. (from checkpoint ``restore`` when resuming); return the last round
    run (the round that starts after a stop request is the last)."""
    threads_before = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _train(config, run_dir, recorder, stop, start, restore)
    finally:
        torch.set_num_threads(threads_before)


def _train(config: TrainConfig, run_dir: Path, recorder: RunRecorder, stop, start: int, restore: Path | None) -> int:
    spec = model_spec(config, recorder.dataset)
    buf = SlotBuffer.allocate(slot_fields(config.batch_size, spec.sample_shape, config.eval_samples), config.k,
                              shared=False)
    generators = [GeneratorRole(config, spec, k) for k in range(config.k)]
    disc = DiscriminatorRole(config, spec, recorder.dataset)
    clf = ClassifierRole(config, spec) if config.k > 1 else None
    roles = generators + [disc] + ([clf] if clf else [])
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
    for n in range(start, config.rounds):
        final = n == config.rounds - 1 or stop.requested
        for g in generators:
            g.write_sample(buf, n)
        d_losses = []
        for k in range(config.k):
            disc.validate(buf, k, n)
            d_losses.append(disc.update(k, n))
        recorder.discriminator(n, mean(d_losses))
        if clf is not None:
            recorder.classifier(n, mean([clf.serve_slot(buf, k, n) for k in range(config.k)]))
        for g in generators:
            recorder.generator(g.k, n, *g.update(buf, n))
        if eval_due(config, n, final):
            t0 = time.perf_counter()
            for g in generators:
                g.write_eval(buf, n)
            recorder.evaluate(n, buf.eval_sample, time.perf_counter() - t0)
        if checkpoint_due(config, n, final):
            for role in roles:
                checkpoint.save_role(run_dir, n, role.name, role.state_dict(n))
            checkpoint.finalize(run_dir, n, config.roles, config.keep_checkpoints,
                                {"fingerprint": checkpoint.fingerprint(config), "train_seconds": recorder.train_seconds()})
            recorder.write()
        if final:
            break
    return n
