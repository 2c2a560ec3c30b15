"""A role's view of the control plane in the parallel and async engines, and the round loop."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

from sharedgan.config import TrainConfig
from sharedgan.roles.base import RoleState
from sharedgan.roles.generator import GeneratorRole
from sharedgan.runtime import devices
from sharedgan.runtime.buffer import SlotBuffer
from sharedgan.runtime.messages import Kind, Mailbox, Outbox, Resync, Role
from sharedgan.runtime.transport import SharedMemory
from sharedgan.storage import checkpoint

log = logging.getLogger("sharedgan")


FINAL_LINGER_MS = 1000  # bounded: a normal exit never waits longer than this on a dead peer


class Links:
    """A role's view of the control plane."""

    def __init__(self, mailbox: Mailbox, outbox: Outbox, config: TrainConfig, watchdog: Callable[[], None],
                 transport=None):
        self.mailbox, self.outbox, self.config, self.watchdog = mailbox, outbox, config, watchdog
        self.transport = transport or SharedMemory()  # what moves the regions a signal carries
        mailbox.arrival = self.transport.arrived
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
        self.transport.sent(to, kind, self.outbox.role if as_role is None else as_role, slot)

    def save_checkpoint(self, run_dir: Path, role: RoleState, round_index: int, as_role: Role | None = None) -> None:
        """Write ``role``'s part of the checkpoint of ``round_index`` and tell the runner: the one
        save-and-announce of every loop of the parallel and async engines. An orphan (its runner
        gone) writes nothing: nobody would publish it, and it would be left as a .partial."""
        self.watchdog()
        checkpoint.save_role(run_dir, round_index, role.name, role.state_dict(round_index))
        self.send("runner", Kind.CHECKPOINT_SAVED, self.outbox.slot, round_index, as_role=as_role)

    def write_eval(self, buf: SlotBuffer, role: GeneratorRole, round_index: int) -> None:
        """A generator's evaluation samples into its slot, announced with the seconds they took."""
        start = time.perf_counter()
        role.write_eval(buf, round_index)
        self.send("runner", Kind.EVAL_READY, role.k, round_index, (time.perf_counter() - start,))

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
                # the runner judges a slow start (its deadline counts from after the last spawn, so a
                # role that was ready early must not give up first and be the one blamed); this wait
                # is only the last resort of a runner that hangs (a dead one its watchdog sees)
                timeout = 2 * self.config.startup_timeout + 10.0
                msg = self.mailbox.wait(lambda m: m.matches(Kind.BEGIN, Role.RUNNER) and m.values[0] == epoch,
                                        f"BEGIN of epoch {epoch}", timeout)
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

