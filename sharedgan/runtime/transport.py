"""The transport seam: how the slot regions a signal speaks of reach the process that reads them.

A signal says "slot k holds round n" (:mod:`sharedgan.runtime.messages`); the data it speaks of
lives in slot regions of the :class:`~sharedgan.runtime.buffer.SlotBuffer`. :func:`payload` declares,
once, which regions travel with which signal. Two transports carry them:

* :class:`SharedMemory` (``--transport shm``, one machine): every process maps the same buffer, so
  the regions are already where the reader looks; it moves nothing.
* :class:`PointToPoint` (``--transport distributed``, torchrun): every process keeps a local buffer
  of the same layout. After a signal goes out on ZeroMQ, the sender posts a torch.distributed
  ``isend`` of the regions packed into one message; the receiver posts the matching ``recv`` when
  the signal arrives (so a receive is only ever posted for data already on its way: a gloo receive
  cannot be polled, and one that times out breaks its connection). The protocol that makes shared
  memory safe makes this safe too: a region is written again only after its reader said it is done
  with it, so a local copy is never overwritten while in use.
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.distributed as dist

from sharedgan.runtime.buffer import SlotBuffer
from sharedgan.runtime.messages import Kind, Message, PeerLost, Role

ALL = -1  # every slot's row of a field (the loss-gap β reads every generator's stats)
PEER_GONE = ("closed by peer", "reset by peer")  # gloo's words for a receive whose sender died

_SAMPLE = ("sample", "sample_round", "gen_round", "gen_loss", "gen_beta")
_VALIDATION = {
    Role.DISCRIMINATOR: ("d_score", "d_grad", "d_term", "d_round"),
    Role.CLASSIFIER: ("c_score", "c_grad", "c_term", "c_round"),
    Role.TEACHER: ("t_score", "t_grad", "t_term", "t_round"),
}
_STATS = ("gen_round", "gen_loss", "gen_beta")


def payload(kind: Kind, signer: Role, slot: int) -> tuple[tuple[str, int], ...]:
    """The (field, slot) regions a signal carries from its sender to its receiver; slot
    :data:`ALL` is the field's every row.

    * SAMPLE_READY from generator k: its batch, and its stats of the last round (which C passes on);
    * VALIDATION_READY from D, C or T to generator k: that role's validation of slot k; C's also
      every generator's stats, which it has from their SAMPLE_READY and generator k's β reads;
    * EVAL_READY from generator k: its evaluation samples.
    """
    if kind == Kind.SAMPLE_READY and signer == Role.GENERATOR:
        return tuple((name, slot) for name in _SAMPLE)
    if kind == Kind.VALIDATION_READY and signer in _VALIDATION:
        rows = tuple((name, slot) for name in _VALIDATION[signer])
        return rows + tuple((name, ALL) for name in _STATS) if signer == Role.CLASSIFIER else rows
    if kind == Kind.EVAL_READY and signer == Role.GENERATOR:
        return (("eval_sample", slot),)
    return ()


def traffic(fields: dict, k: int, teacher: bool = False) -> tuple[int, int]:
    """Bytes :class:`PointToPoint` moves in one lock-step round, and in one evaluation, by the
    layout alone: every generator's batch to each of its readers (D, C when K > 1, T with
    ``teacher``), and each reader's validation back."""
    def size(regions):
        return sum(fields[name].nbytes * (k if slot == ALL else 1) for name, slot in regions)
    validators = [Role.DISCRIMINATOR] + [Role.CLASSIFIER] * (k > 1) + [Role.TEACHER] * teacher
    per_slot = sum(size(payload(Kind.SAMPLE_READY, Role.GENERATOR, 0)) + size(payload(Kind.VALIDATION_READY, role, 0))
                   for role in validators)
    return k * per_slot, k * size(payload(Kind.EVAL_READY, Role.GENERATOR, 0))


def sender(msg: Message) -> str:
    """The process that sent a data-carrying signal."""
    return f"generator-{msg.slot}" if msg.role == Role.GENERATOR else msg.role.name.lower()


def _region(buf: SlotBuffer, name: str, slot: int) -> torch.Tensor:
    view = buf.views[name]
    return view if slot == ALL else view[slot]


def _bytes(region: torch.Tensor) -> torch.Tensor:
    return region.reshape(-1).view(torch.uint8)  # (a view: writing it writes the region)


def pack(buf: SlotBuffer, regions) -> torch.Tensor:
    """The regions' bytes, one after the other, in one uint8 tensor."""
    return torch.cat([_bytes(_region(buf, n, s)) for n, s in regions])


def unpack(buf: SlotBuffer, regions, packed: torch.Tensor) -> None:
    """Write what :func:`pack` made back into the regions (byte for byte: a region's offset in
    ``packed`` need not suit its dtype, e.g. an int64 after an odd number of bf16 values)."""
    at = 0
    for name, slot in regions:
        target = _bytes(_region(buf, name, slot))
        target.copy_(packed[at: at + target.numel()])
        at += target.numel()


class SharedMemory:
    """Every process maps the one buffer: nothing to move."""

    name = "shm"
    bytes_sent = 0

    def sent(self, to: str, kind: Kind, signer: Role, slot: int) -> None:
        pass

    def arrived(self, msg: Message) -> None:
        pass

    def close(self) -> None:
        pass


class PointToPoint:
    """torch.distributed point-to-point between local buffers (see the module doc). ``ranks``: the
    rank of every process by name; the message tag is the signal's kind, so the regions of
    different kinds between the same two processes never match each other's receives."""

    name = "distributed"

    def __init__(self, buf: SlotBuffer, ranks: dict[str, int]):
        self.buf, self.ranks = buf, ranks
        self.bytes_sent = 0
        self.bytes_received = 0
        # sends not yet known complete, by destination: waited for before the next one there,
        # which the protocol orders after the receiver took the previous one
        self.in_flight: dict[int, list] = defaultdict(list)

    def _size(self, regions) -> int:
        return sum(_region(self.buf, n, s).nbytes for n, s in regions)

    def sent(self, to: str, kind: Kind, signer: Role, slot: int) -> None:
        regions = payload(kind, signer, slot)
        if not regions:
            return
        dst = self.ranks[to]
        self._settle(dst)
        packed = pack(self.buf, regions)
        self.in_flight[dst].append((dist.isend(packed, dst, tag=int(kind)), packed))
        self.bytes_sent += packed.numel()

    def arrived(self, msg: Message) -> None:
        regions = payload(msg.kind, msg.role, msg.slot)
        if not regions:
            return
        packed = torch.empty(self._size(regions), dtype=torch.uint8)
        try:
            dist.recv(packed, self.ranks[sender(msg)], tag=int(msg.kind))
        except RuntimeError as exc:
            if not any(why in str(exc) for why in PEER_GONE):
                raise
            raise PeerLost(sender(msg), msg.kind) from exc  # it died before its send went out
        self.bytes_received += packed.numel()
        unpack(self.buf, regions, packed)

    def _settle(self, dst: int) -> None:
        for work, _ in self.in_flight.pop(dst, []):
            work.wait()

    def close(self) -> None:
        """Wait for every send still in flight (each receiver posted its receive when the signal came)."""
        for dst in list(self.in_flight):
            self._settle(dst)
