"""The asynchronous engine, runner side (``--engine async``; the children's side and the protocol
are in :mod:`sharedgan.engines.asynchronous.loops`).

The runner is the dispatcher: every SAMPLE_READY goes to a free D process and a free C process at
once, or waits in a first-come-first-served queue until one frees up (:class:`Dispatcher`), so a
generator never waits on a busy replica while another is idle. It also turns checkpoints into
barriers and a stop into an agreed final round (see asynchronous.loops), and it keeps the record: D's
and C's loss of round n is the mean over the K slots of round n they served, whichever replica.
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path

from sharedgan.config import TrainConfig
from sharedgan.engines.parallel.supervisor import Supervisor
from sharedgan.engines.recorder import RunRecorder
from sharedgan.roles.build import make_model, model_spec
from sharedgan.runtime import devices
from sharedgan.runtime.buffer import ParameterRegion
from sharedgan.runtime.messages import Kind, Message, Role

log = logging.getLogger("sharedgan")


class Dispatcher:
    """Slots waiting for one kind of server (D or C) and the servers free to take them.

    A free server takes waiting slots at once, the oldest first, up to ``max_batch`` of them in
    one step; waiting slots are shared out evenly over the free servers. A slot waits only while
    every server is busy. Free servers are taken in order, the primary first (with
    ``--replica-sync copy`` the primary's parameters are the ones every replica loads)."""

    def __init__(self, servers: list[str], max_batch: int = 1):
        self.servers, self.max_batch = list(servers), max_batch
        self.free = list(servers)
        self.waiting: deque[tuple[int, int]] = deque()
        self.busy: dict[str, list[tuple[int, int]]] = {}

    def _assign(self) -> list[tuple[str, list[tuple[int, int]]]]:
        out = []
        while self.waiting and self.free:
            server = min(self.free, key=self.servers.index)
            take = min(self.max_batch, -(-len(self.waiting) // len(self.free)))
            self.free.remove(server)
            self.busy[server] = [self.waiting.popleft() for _ in range(take)]
            out.append((server, list(self.busy[server])))
        return out

    def submit(self, slot: int, round_index: int) -> list[tuple[str, list[tuple[int, int]]]]:
        """Slot ``slot`` holds round ``round_index``: the (server, [(slot, round), ...]) to send now."""
        self.waiting.append((slot, round_index))
        return self._assign()

    def done(self, server: str, slot: int) -> list[tuple[str, list[tuple[int, int]]]]:
        """``server`` served ``slot``; once it served all it was given it is free again."""
        jobs = self.busy.get(server, [])
        job = next((j for j in jobs if j[0] == slot), None)
        if job is None:
            raise RuntimeError(f"{server} reported slot {slot}, which it was never given")
        jobs.remove(job)
        if jobs:
            return []
        del self.busy[server]
        self.free.append(server)
        return self._assign()

    @property
    def idle(self) -> bool:
        return not self.waiting and not self.busy


class AsyncSupervisor(Supervisor):
    def __init__(self, config: TrainConfig, run_dir: Path, recorder: RunRecorder, stop, start: int,
                 restore: Path | None):
        super().__init__(config, run_dir, recorder, stop, start, restore)
        spec = model_spec(config, recorder.dataset)
        replicas = {Role.DISCRIMINATOR: config.d_replicas, Role.CLASSIFIER: config.c_replicas if config.k > 1 else 0}
        self.dispatch: dict[Role, Dispatcher] = {}
        self._regions: dict[str, ParameterRegion] = {}  # kept alive here for the whole run, like the buffer
        for role, count in replicas.items():
            if count == 0:
                continue
            name = role.name.lower()
            self.dispatch[role] = Dispatcher([name] + [f"{name}-{r}" for r in range(1, count)], config.serve_batch_size)
            if count > 1:
                net = make_model(config, name, spec)  # the initial values; the primary overwrites them on resume
                self._regions[name] = ParameterRegion.for_model(net, devices.role_device(config, name))
        self.regions.update({name: region.handle() for name, region in self._regions.items()})
        self.servers = [p for p in self.processes if not p.startswith("generator-")]
        # by round, until all K are in
        self.losses: dict[Role, dict[int, list[float]]] = {role: {} for role in self.dispatch}
        self.save_due: list[int] = []  # rounds every generator saved; SAVE goes out when nothing is in flight
        self.complete: set[int] = set()  # rounds whose checkpoint is finalized
        self.halted: dict[int, int] = {}
        self.final_round: int | None = None

    def handlers(self) -> dict:
        table = super().handlers()
        on_saved, on_finished = table[Kind.CHECKPOINT_SAVED], table[Kind.FINISHED]

        def checkpoint_saved(msg: Message, name: str) -> None:
            on_saved(msg, name)
            # D and C save a round only when told to, after every generator saved it
            if msg.role == Role.GENERATOR and self.saved[msg.round] == self.config.k:
                self.save_due.append(msg.round)
                self._send_saves()

        def finished(msg: Message, name: str) -> None:
            on_finished(msg, name)
            if msg.role == Role.GENERATOR:
                self._decide_final()

        return {**table, Kind.SAMPLE_READY: self._on_sample_ready, Kind.DONE: self._on_done,
                Kind.HALTED: self._on_halted, Kind.CHECKPOINT_SAVED: checkpoint_saved, Kind.FINISHED: finished}

    def _on_sample_ready(self, msg: Message, name: str) -> None:
        for dispatcher in self.dispatch.values():
            self._serve(dispatcher.submit(msg.slot, msg.round))

    def _on_done(self, msg: Message, server: str) -> None:
        self.recorder.served[server] = self.recorder.served.get(server, 0) + 1
        slot, loss, *seconds = msg.values[:5]
        self._serve(self.dispatch[msg.role].done(server, int(slot)))
        self.recorder.times(msg.role.name.lower(), -1, msg.round, *seconds, add=True)
        losses = self.losses[msg.role].setdefault(msg.round, [])
        losses.append(loss)
        if len(losses) == self.config.k:
            del self.losses[msg.role][msg.round]
            record = self.recorder.discriminator if msg.role == Role.DISCRIMINATOR else self.recorder.classifier
            record(msg.round, sum(losses) / len(losses))
        self._progress()
        self._send_saves()

    def _on_halted(self, msg: Message, name: str) -> None:
        self.halted[msg.slot] = msg.round
        self._decide_final()

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            self._regions = {}  # the replicas' parameter regions go with the run (see Supervisor._close)

    def _serve(self, assignments) -> None:
        for server, jobs in assignments:
            for slot, round_index in jobs:  # values[0]: how many SERVE make up this step
                self.outbox.send(server, Kind.SERVE, slot, round_index, (len(jobs),))

    def _send_saves(self) -> None:
        if self.save_due and all(d.idle for d in self.dispatch.values()):
            n = self.save_due.pop(0)
            for name in ("discriminator", "classifier")[:len(self.dispatch)]:
                self.outbox.send(name, Kind.SAVE, -1, n)

    def _checkpoint_complete(self, n: int) -> None:
        self.complete.add(n)
        if n == self.config.rounds - 1 or n == self.final_round:
            self._end_servers()
        elif self.stop_sent_at is None:
            for k in range(self.config.k):
                self.outbox.send(f"generator-{k}", Kind.BEGIN, -1, n + 1, (self.epoch,))

    def _end_servers(self) -> None:
        for name in self.servers:
            self.outbox.send(name, Kind.END)

    def _send_stop(self) -> None:
        for k in range(self.config.k):
            if f"generator-{k}" not in self.finished:
                self.outbox.send(f"generator-{k}", Kind.STOP)
        log.info("stop requested; every generator halts after its current round")

    def _decide_final(self) -> None:
        """Once every generator halted (or finished its last planned round): the final round is the
        furthest any of them got; the others run up to it."""
        if self.final_round is not None or self.stop_sent_at is None:
            return
        finished = [k for k in range(self.config.k) if f"generator-{k}" in self.finished]
        if len(self.halted) + len(finished) < self.config.k:
            return
        self.final_round = max([*self.halted.values()] + [self.config.rounds - 1] * bool(finished))
        log.info("the last round is %d", self.final_round)
        for k in self.halted:
            self.outbox.send(f"generator-{k}", Kind.FINAL, -1, self.final_round)
        if self.final_round in self.complete:
            self._end_servers()


def run(config: TrainConfig, run_dir: Path, recorder: RunRecorder, stop, start: int = 0,
        restore: Path | None = None) -> int:
    """Train rounds ``start``.. asynchronously; return the last round run."""
    return AsyncSupervisor(config, run_dir, recorder, stop, start, restore).run()

