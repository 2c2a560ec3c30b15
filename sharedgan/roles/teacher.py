"""HGAN's teacher T and its distiller D_T: a third critic of every slot, beside D and C.

Per round n, in every engine, after D's and C's steps (docs/math.md, "HGAN's teacher"):

1. for k = 0..K−1: D_T scores slot k and writes the gradient of its term of J^{G_k} into the
   third validation region (``t_grad``, ``t_score``, ``t_term``, ``t_round``), then takes one step
   on the teacher's batch for slot k (its "real" data) against slot k — as D does with real data.
   ``--teacher-term likelihood`` has no D_T: T itself writes ∂(−mean log p_T(x))/∂x of slot k.
2. T takes one maximum-likelihood step on a real batch of its own stream (none with ``--teacher``:
   a teacher trained before stays fixed) and, when due, draws the teacher batches of round n + 1
   into the teacher region (``t_sample``).

Drawing at the end of the round lets a PixelCNN's slow sampling overlap the generators' updates in
the parallel engine. The teacher batches live in the buffer, not in any model, so a checkpoint
saves them: a resumed run contrasts the very batches the uninterrupted one would.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch

from sharedgan.config import TrainConfig
from sharedgan.errors import ConfigError
from sharedgan.math.losses import input_gradient
from sharedgan.math.seeding import derive_seed, stream
from sharedgan.models.pixelcnn import from_levels
from sharedgan.models.spec import ModelSpec
from sharedgan.models.teacher import build_teacher, mean_nll
from sharedgan.roles.base import CPU, RoleState, check_finite
from sharedgan.roles.discriminator import DiscriminatorRole
from sharedgan.runtime import faults
from sharedgan.runtime.buffer import SlotBuffer, as_float
from sharedgan.storage.teacher_file import check_pool, read_teacher


def teacher_of(config: TrainConfig, sample_shape: tuple[int, ...], trained: bool = True) -> torch.nn.Module:
    """The teacher of a run: built from the run's own stream, then (``trained``) loaded from
    ``--teacher`` if given. A checkpoint's teacher needs no file: its weights are in the checkpoint."""
    net = build_teacher(sample_shape, config.teacher_width, config.teacher_components,
                        derive_seed(config.seed, "init", "teacher", 0))
    if trained and config.teacher is not None:
        _load_weights(net, fixed_teacher(config, sample_shape), config.teacher)
    return net


def fixed_teacher(config: TrainConfig, sample_shape: tuple[int, ...]) -> dict:
    """``--teacher``'s file, checked against the run: its weights (``model``) and, if it has one, its
    pool of samples (``pool``, uint8 levels)."""
    data = read_teacher(config.teacher, sample_shape, config.teacher_width, config.teacher_components)
    if Path(str(data.get("dataset"))).name != Path(config.dataset).name:
        raise ConfigError(f"--teacher {config.teacher} was trained on {data.get('dataset')}, this run's data is "
                          f"{config.dataset}: train a teacher on it ('sharedgan teacher --dataset ...')")
    return data


def _load_weights(net: torch.nn.Module, data: dict, path: str) -> None:
    try:
        net.load_state_dict(data["model"])
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ConfigError(f"--teacher {path}: its weights do not fit this teacher "
                          f"({str(exc).splitlines()[0]})") from None


class DistillerRole(DiscriminatorRole):
    """D_T: built and trained as D is (same factory, loss, options), from a stream of its own; its
    real data are the teacher's batches, and it writes the slot's teacher region."""

    name = "teacher"  # it runs in the teacher's process, which its errors and fault points name
    region = "t"
    streams = "distiller-"

    def __init__(self, config: TrainConfig, spec: ModelSpec, device: torch.device, teacher_batch: Callable):
        super().__init__(config, spec, None, device, stream_name="distiller")
        self.teacher_batch = teacher_batch

    def _real(self, k: int, n: int) -> torch.Tensor:
        return self.teacher_batch(k)


class TeacherRole(RoleState):
    lr_role = "teacher"
    name = "teacher"

    def __init__(self, config: TrainConfig, spec: ModelSpec, dataset, device: torch.device = CPU):
        self.config, self.dataset, self.device = config, dataset, device
        self.images = len(spec.sample_shape) > 1
        self.net = teacher_of(config, spec.sample_shape, trained=False).to(device)  # (the file: at rejoin)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.lr_teacher)
        self.frozen = config.teacher is not None  # a teacher trained before is the fixed target
        self.sample_shape = tuple(spec.sample_shape)
        self.pool: torch.Tensor | None = None  # a fixed teacher's samples drawn when it was trained, uint8 levels
        self.distiller = (DistillerRole(config, spec, device, lambda k: self._buf.t_sample[k].to(self.device))
                          if config.teacher_term == "adversarial" else None)
        self._buf: SlotBuffer | None = None
        self._restored_batch: torch.Tensor | None = None
        self._restored = False  # loaded from a checkpoint (else a fixed teacher comes from its file)

    # ---- 1. the third validation region ------------------------------------------------------
    def validate(self, buf: SlotBuffer, k: int, round_index: int) -> None:
        self.validate_slots(buf, [(k, round_index)])

    def update(self, k: int, round_index: int) -> float:
        return self.update_slots([(k, round_index)])

    def validate_all(self, buf: SlotBuffer, round_index: int) -> None:
        """Engine "batched": D_T scores all K slots with one pass, as D does there."""
        self.validate_slots(buf, [(k, round_index) for k in range(buf.num_slots)])

    def update_all(self, round_index: int) -> float:
        return self.update_slots([(k, round_index) for k in range(self.config.k)])

    def validate_slots(self, buf: SlotBuffer, jobs: list[tuple[int, int]]) -> None:
        if self.distiller is not None:
            self.distiller.validate_slots(buf, jobs)
        else:
            self._likelihood_terms(buf, jobs)

    def update_slots(self, jobs: list[tuple[int, int]]) -> float:
        """D_T's step on the slots of ``jobs`` (its loss), or NaN: the likelihood term has no D_T."""
        return self.distiller.update_slots(jobs) if self.distiller is not None else math.nan

    def _likelihood_terms(self, buf: SlotBuffer, jobs: list[tuple[int, int]]) -> None:
        """--teacher-term likelihood: slot k's term is −mean log p_T(x) over its samples, through the
        teacher's exact density (the teacher's parameters get no gradient from it)."""
        slots, m = [k for k, _ in jobs], self.config.batch_size
        for k, n in jobs:
            if int(buf.sample_round[k]) != n:
                raise RuntimeError(f"teacher: slot {k} holds round {int(buf.sample_round[k])}, expected {n}")
        with self.copying():
            x = as_float(buf.sample[slots], self.device, copy=True).requires_grad_(True)
        log_p = self.net.log_prob(x.reshape(len(slots) * m, *x.shape[2:])).reshape(len(slots), m)
        terms = -log_p.mean(dim=1)
        grad = input_gradient(terms.sum(), x)
        check_finite(self.name, jobs[0][1], "its gradient for the slots", grad)
        with self.copying():
            for i, k in enumerate(slots):
                buf.t_grad[k].copy_(grad[i])
                buf.t_score[k].copy_(log_p[i].detach())
                buf.t_term[k] = terms[i].item()
        faults.point("validation-write", self.name, jobs[0][1])
        for k, n in jobs:
            buf.t_round[k] = n

    # ---- 2. the teacher's own step, and its next batches ---------------------------------------
    def end_round(self, buf: SlotBuffer, round_index: int, tick: Callable[[], None] = lambda: None) -> float:
        """T's maximum-likelihood step on round n's real batch, then round n + 1's teacher batches
        when due. Returns the batch's NLL before the step: nats per sample for 2-D data, bits per
        dimension for images; NaN for a fixed teacher, which takes no step (its held-out NLL is the
        one its file reports: scoring a batch would cost a PixelCNN seconds a round, for nothing)."""
        nll = math.nan
        if not self.frozen:
            real = self.dataset.sample(self.config.batch_size, stream(self.config.seed, "teacher-real", 0, round_index))
            self.set_round(round_index)
            loss = self._nll(real.to(self.device))
            check_finite(self.name, round_index, "its loss", loss.detach())
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.step()
            nll = float(loss.detach())
        if self.distiller is not None:
            self.draw(buf, round_index + 1, tick)
        return nll

    def _nll(self, x: torch.Tensor) -> torch.Tensor:
        return mean_nll(self.net, x)

    def draw(self, buf: SlotBuffer, round_index: int, tick: Callable[[], None] = lambda: None,
             force: bool = False) -> None:
        """The teacher batches of ``round_index`` into the teacher region, if due (every
        --teacher-sample-every rounds, or ``force``); else the last ones stay. ``tick`` runs between
        slots (a PixelCNN's sampling takes long: its process keeps beating)."""
        if not force and round_index % self.config.teacher_sample_every:
            return
        was_training = self.net.training
        self.net.eval()
        m = self.config.batch_size
        for k in range(buf.num_slots):
            gen = stream(self.config.seed, "teacher-sample", k, round_index)
            if self.pool is not None:  # m of the pool's samples, with replacement: no pixel-by-pixel sampling
                batch = from_levels(self.pool[torch.randint(len(self.pool), (m,), generator=gen)])
            else:
                batch = self.net.sample(m, gen)
            with self.copying():
                buf.t_sample[k].copy_(batch)
            tick()
        self.net.train(was_training)

    # ---- state --------------------------------------------------------------------------------
    def rejoin(self, buf: SlotBuffer, round_index: int) -> None:
        """Begin at ``round_index``: the teacher batches of a checkpoint back in the buffer (or
        fresh ones, at a start), no half-done round."""
        self._buf = buf
        if self.frozen and not self._restored:  # a fresh start: the fixed teacher's weights from its file
            data = fixed_teacher(self.config, self.sample_shape)
            _load_weights(self.net, data, self.config.teacher)
            self.pool = data.get("pool")
            self._restored = True  # (once)
        if self.distiller is not None:
            self.distiller.rejoin(buf, round_index)
            if self._restored_batch is not None:  # (once: a later rejoin keeps what the buffer holds)
                buf.t_sample.copy_(self._restored_batch)
                self._restored_batch = None
            elif round_index == 0 or int(buf.t_round.max()) < 0:  # nothing drawn yet; (a role
                self.draw(buf, round_index, force=True)  # respawned without a checkpoint keeps the buffer's)

    def state_dict(self, round_index: int) -> dict:
        state = super().state_dict(round_index)
        if self.distiller is not None:
            state["distiller"] = self.distiller.state_dict(round_index)
            state["teacher_batch"] = self._buf.t_sample.to("cpu", copy=True)
        if self.pool is not None:  # (a resumed run needs no teacher file: weights and pool are here)
            state["pool"] = self.pool
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._restored = True
        if "pool" in state:
            self.pool = check_pool(state["pool"], self.sample_shape, "the teacher's checkpoint")
        if self.distiller is not None:
            self.distiller.load_state_dict(state["distiller"])
            self._restored_batch = state["teacher_batch"]
