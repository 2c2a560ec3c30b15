"""The K-slot shared buffer: the only data plane between the processes.

The layout is declared once, in :func:`slot_fields` (name → per-slot shape and dtype), the way a
rollout-buffer spec is declared in RL trainers. :class:`SlotBuffer` places every field of every
slot in one flat byte allocation (64-byte aligned regions, so the CPU kernels see the same
alignment in every engine) and exposes each field as a tensor view of shape [K, *shape].

Ownership: slot k's sample region is written by generator k only after D and C have released
it; its validation regions are written by D and C only after generator k signalled its sample.
The per-slot ``gen_*`` stats are double-buffered by round parity, because generator k reads the
other generators' previous-round losses (for the loss-gap β) while they may already be writing
this round's.

The buffer is allocated by the runner before any child starts and handed to children at spawn
(``handle()`` / ``attach()``); on CPU it is shared memory whose file is unlinked at creation, so
nothing is left in /dev/shm on any exit path. On CUDA (``--device cuda``) it is one device
allocation that torch.multiprocessing hands to the children as a CUDA IPC handle; the runner keeps
it alive for the whole run, and a writer settles its stream before it signals (see devices).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

ALIGN = 64


@dataclass(frozen=True)
class Field:
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * torch.empty((), dtype=self.dtype).element_size()


def slot_fields(batch_size: int, sample_shape: tuple[int, ...], eval_samples: int,
                teacher: bool = False, exchange: torch.dtype = torch.float32) -> dict[str, Field]:
    """The layout of one slot. Every name here becomes a [K, *shape] view on the buffer.
    ``teacher``: the teacher's regions too (HGAN, ``--teacher-weight``). ``exchange``: the dtype of
    the batches and of the gradients written back (``--slot-precision``); readers of those regions
    go through :func:`as_float`."""
    m, shape = batch_size, tuple(sample_shape)
    f32, f64, i64, ex = torch.float32, torch.float64, torch.int64, exchange
    fields = {
        # sample region (written by generator k)
        "sample": Field((m, *shape), ex),
        "sample_round": Field((), i64),
        # validation region (D's part): logits d(x), ∂(D term of J^{G_k})/∂x, the term's value
        "d_score": Field((m,), f32),
        "d_grad": Field((m, *shape), ex),
        "d_term": Field((), f64),
        "d_round": Field((), i64),
        # validation region (C's part): C's term of J^{G_k} per sample, ∂(its mean, without β)/∂x, the mean
        "c_score": Field((m,), f32),
        "c_grad": Field((m, *shape), ex),
        "c_term": Field((), f64),
        "c_round": Field((), i64),
        # per-slot stats written by generator k after its update, indexed by round parity
        "gen_round": Field((2,), i64),
        "gen_loss": Field((2,), f64),
        "gen_beta": Field((2,), f64),
        # fresh samples for evaluation (never the training batch)
        "eval_sample": Field((eval_samples, *shape), f32),
    }
    if teacher:
        fields |= {
            # teacher region (written by T): the teacher's batch D_T contrasts with slot k
            "t_sample": Field((m, *shape), f32),
            # the third validation region (D_T's, or T's own −log p_T): as D's
            "t_score": Field((m,), f32),
            "t_grad": Field((m, *shape), ex),
            "t_term": Field((), f64),
            "t_round": Field((), i64),
        }
    return fields


EXCHANGE_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def fields_of(config, sample_shape: tuple[int, ...]) -> dict[str, Field]:
    """The slot layout of a run of ``config``."""
    return slot_fields(config.batch_size, sample_shape, config.eval_samples, bool(config.teacher_weight),
                       EXCHANGE_DTYPES[config.slot_precision])


def as_float(region: torch.Tensor, device: torch.device | None = None, copy: bool = False) -> torch.Tensor:
    """A batch or gradient region as float32 on ``device`` (a bf16 one, ``--slot-precision``, is
    widened); ``copy``: never a view of the buffer, whatever its dtype."""
    return region.to(device if device is not None else region.device, torch.float32, copy=copy)


def _layout(fields: dict[str, Field], num_slots: int) -> tuple[dict[str, int], int]:
    offsets, cursor = {}, 0
    for name, f in fields.items():
        cursor = -(-cursor // ALIGN) * ALIGN
        offsets[name] = cursor
        cursor += f.nbytes * num_slots
    return offsets, -(-cursor // ALIGN) * ALIGN


def buffer_bytes(fields: dict[str, Field], num_slots: int) -> int:
    """What :meth:`SlotBuffer.allocate` would allocate for this layout, before it does."""
    return _layout(fields, num_slots)[1]


class SlotBuffer:
    """K slots, one flat allocation, a [K, *shape] tensor view per declared field."""

    def __init__(self, fields: dict[str, Field], num_slots: int, flat: torch.Tensor):
        offsets, total = _layout(fields, num_slots)
        if flat.dtype != torch.uint8 or flat.numel() != total:
            raise ValueError(f"flat buffer must be {total} uint8 bytes, got {flat.numel()} {flat.dtype}")
        self.fields, self.num_slots, self.flat = fields, num_slots, flat
        self.views: dict[str, torch.Tensor] = {}
        for name, f in fields.items():
            raw = flat[offsets[name]: offsets[name] + f.nbytes * num_slots]
            self.views[name] = raw.view(f.dtype).view(num_slots, *f.shape)

    def __getattr__(self, name: str) -> torch.Tensor:
        views = self.__dict__.get("views")
        if views is not None and name in views:
            return views[name]
        raise AttributeError(name)

    @classmethod
    def allocate(cls, fields: dict[str, Field], num_slots: int,
                 device: str = "cpu", shared: bool = True) -> "SlotBuffer":
        _, total = _layout(fields, num_slots)
        flat = torch.zeros(total, dtype=torch.uint8, device=device)
        if shared and flat.device.type == "cpu":
            flat.share_memory_()
        buf = cls(fields, num_slots, flat)
        for name in ("sample_round", "d_round", "c_round", "gen_round", "t_round"):
            if name in buf.views:
                buf.views[name].fill_(-1)
        return buf

    @property
    def nbytes(self) -> int:
        return self.flat.numel()

    def handle(self) -> tuple:
        """What a child needs to attach: the spec and the flat storage (shared at spawn)."""
        return (self.fields, self.num_slots, self.flat)

    @classmethod
    def attach(cls, handle: tuple) -> "SlotBuffer":
        return cls(*handle)


def _state_tensors(net: torch.nn.Module) -> list[torch.Tensor]:
    """What a replica shares: every parameter and floating-point buffer (batch-norm statistics), in
    a fixed order. Integer buffers (batch norm's step count) stay each replica's own."""
    return [p for p in net.parameters()] + [b for b in net.buffers() if b.is_floating_point()]


class ParameterRegion:
    """The buffer's parameter region: one model's parameters shared by its replicas (engine async).

    * ``hogwild``: :meth:`bind` makes every replica's parameters views of ``values``; each replica
      steps its own optimiser on them without locks (Hogwild, PGAN §3.1).
    * ``copy``: the primary :meth:`publish` es its parameters every few steps, replicas
      :meth:`pull` the latest. ``version`` is a sequence counter, odd while a copy is being written;
      a reader that sees it odd, or changed across its read, keeps its own parameters this time.
    """

    def __init__(self, values: torch.Tensor, version: torch.Tensor, buffers: bool = True):
        """``buffers``: share the float buffers (batch-norm statistics) too; a shared generator
        body shares its parameters only, each generator keeping statistics of its own batches."""
        self.values, self.version, self.buffers = values, version, buffers
        self.pulled = 0  # the version this process last loaded

    @classmethod
    def for_model(cls, net: torch.nn.Module, device: str | torch.device = "cpu", shared: bool = True,
                  buffers: bool = True) -> "ParameterRegion":
        tensors = _state_tensors(net) if buffers else list(net.parameters())
        values = torch.cat([t.detach().reshape(-1).float() for t in tensors]).to(device)
        version = torch.zeros(1, dtype=torch.int64, device="cpu")
        if shared:
            version.share_memory_()
            if values.device.type == "cpu":
                values.share_memory_()
        return cls(values, version, buffers)

    def handle(self) -> tuple:
        return (self.values, self.version)

    @classmethod
    def attach(cls, handle: tuple) -> "ParameterRegion":
        return cls(*handle)

    def _views(self, net: torch.nn.Module,
               values: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(model tensor, its part of ``values``: the region, or a snapshot of it) in order."""
        values = self.values if values is None else values
        tensors = _state_tensors(net) if self.buffers else list(net.parameters())
        total = sum(t.numel() for t in tensors)
        if total != values.numel():
            raise ValueError(f"parameter region holds {values.numel()} values, the model has {total}")
        offsets = [0]
        for t in tensors:
            offsets.append(offsets[-1] + t.numel())
        return [(t, values[a:b].view_as(t)) for t, a, b in zip(tensors, offsets, offsets[1:])]

    def bind(self, net: torch.nn.Module) -> None:
        """Hogwild: ``net``'s parameters and statistics become views of the shared values."""
        for t, view in self._views(net):
            t.data = view

    def _settle(self) -> None:
        """On CUDA a copy runs after its launch returns: finish it before the counter says so."""
        if self.values.is_cuda:
            torch.cuda.synchronize(self.values.device)

    def publish(self, net: torch.nn.Module) -> None:
        self.version += 1  # odd: being written
        with torch.no_grad():
            for t, view in self._views(net):
                view.copy_(t)
        self._settle()
        self.version += 1

    def pull(self, net: torch.nn.Module) -> bool:
        """Load the latest published parameters, if there is a new, whole one; True if loaded."""
        before = int(self.version)
        if before % 2 or before == self.pulled:
            return False
        snapshot = self.values.clone()
        self._settle()
        if int(self.version) != before:  # the primary began another copy meanwhile: skip this time
            return False
        with torch.no_grad():
            for t, view in self._views(net, snapshot):
                t.copy_(view)
        self.pulled = before
        return True

