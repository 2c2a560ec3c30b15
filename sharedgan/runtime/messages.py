"""The ZeroMQ control plane: small fixed-size messages that say "slot k holds round n".

Every message is one 76-byte frame (``FRAME``), ``(token, kind, role, slot, round, 6 float64
values)``; the token is a random per-run secret, and a frame with the wrong size or token is
dropped and counted, never trusted. Tensors never travel here: they stay in the
:mod:`sharedgan.runtime.buffer`. The frame's layout, byte by byte: docs/architecture.md.

Topology: every process binds one PULL inbox and keeps one PUSH socket per peer it talks to
(PUSH load-balances across connections, so one socket per peer keeps delivery addressed).
Endpoints are ``ipc://`` socket files in the run's private 0700 folder (:func:`private_folder`),
so no other local user can take, reach or see them; the folder is the fork server's, which
removes it on its way out even when the runner is killed (when the user's process already runs a
fork server of its own, children are spawned instead, and a killed runner leaves the folder).
Every wait polls with a timeout, and an ABORT (or a RESYNC) from the runner interrupts any wait.
Sockets close with LINGER 0, except after a normal finish (see :meth:`Outbox.close`); a role's last act is the
FINISHED → DISMISSED handshake with the runner, so no report of the final round is lost.
"""

from __future__ import annotations

import enum
import os
import secrets
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import zmq

FRAME = struct.Struct("<16sBBhq6d")


VALUES = 6  # floats a message carries


POLL_SLICE_MS = 100


class Kind(enum.IntEnum):
    """Every message kind, with who sends it to whom."""
    READY = 1             # any role → runner: models built, entering the loop
    SAMPLE_READY = 2      # generator k → D, C: slot k holds round n's batch
    VALIDATION_READY = 3  # D, C or T → generator k: its validation of slot k for round n is written, and it
                          # reads the slot no more; D's values[0] = 1 on the final round
    # (4, RELEASED, is retired: a VALIDATION_READY releases the slot, see engines.parallel.loops)
    FINAL = 5             # D → C (async: runner → generator): round n was (is) the last one
    ROUND_DONE = 6        # any role → runner: round n finished; values = losses (see engines.parallel)
    EVAL_READY = 7        # generator k → runner: fresh evaluation samples of round n are in slot k
    EVAL_RELEASED = 8     # runner → generator k: evaluation samples of round n were copied out
    CHECKPOINT_SAVED = 9  # any role → runner: its state at round n is on disk
    # runner → D (async: → every generator): finish soon (D makes the round that starts next the final one)
    STOP = 10
    ABORT = 11            # runner → every role: exit now, no checkpoint
    FINISHED = 12         # any role → runner, its last message: everything it had to say was sent before this
                          # values[0] = its peak CUDA memory in bytes (−1: it used no GPU); values[1] = the bytes
                          # it sent over the transport (0 on shared memory); values[2] = its peak RSS
    DISMISSED = 13        # runner → role: FINISHED (and so all before it, one pipe keeps order) was processed
    BEGIN = 14            # runner → role: start (or, after a resync, restart) at round n; values[0] = epoch
    HEARTBEAT = 15        # any role → runner, about once a second from every wait: "I am making progress"
    DIVERGED = 16         # role → runner: NaN or Inf in round n (the role's log says where); it exits next
    # runner → role: a peer was restarted; drop the current round and say where you were (round = epoch)
    RESYNC = 17
    RESYNC_ACK = 18       # role → runner: dropped round n, waiting for BEGIN; values[0] = epoch
    WRITE_FAILED = 19     # role → runner: its checkpoint of round n could not be written; values[0] = errno
    TIMES = 20            # role → runner: seconds of round n spent computing, waiting, copying (values 0–2)
    # the asynchronous engine (engines.asynchronous): the runner hands slots to free D and C replicas
    SERVE = 21            # runner → a D or C process: validate slot k of round n (and update on it)
    # D or C replica r (slot = r) → runner: a slot of round n served; values = (k, loss, compute, wait, copy seconds)
    DONE = 22
    HALTED = 23           # generator k → runner, after a STOP: finished round n, starts no other without FINAL
    SAVE = 24             # runner → D and C primaries: every generator saved round n and nothing is in flight; save it
    END = 25              # runner → a D or C process: the run is over, finish
    # --share-generator-body (parallel engine): the shared body steps once per round, in generator 0
    BODY_GRAD = 26        # generator k → generator 0: its body gradient of round n is in the gradient region
    BODY_STEPPED = 27     # generator 0 → generator k: the body took round n's step


class Role(enum.IntEnum):
    GENERATOR = 0
    DISCRIMINATOR = 1
    CLASSIFIER = 2
    RUNNER = 3
    TEACHER = 4  # HGAN's teacher T, with its distiller D_T (sharedgan.roles.teacher)


class Aborted(Exception):
    """The runner sent ABORT."""


class Resync(Exception):
    """The runner sent RESYNC: a peer was restarted, the current round is abandoned. ``epoch``
    numbers the resyncs of a run, so a BEGIN meant for an earlier one is never taken for this one."""

    def __init__(self, epoch: int):
        super().__init__(epoch)
        self.epoch = epoch


# Kinds that belong to one round; after a resync to round R, such messages of earlier rounds are stale.
ROUND_SCOPED = frozenset({Kind.SAMPLE_READY, Kind.VALIDATION_READY, Kind.FINAL, Kind.EVAL_RELEASED})


class SignalTimeout(RuntimeError):
    """A peer did not answer within the configured timeout."""


class PeerLost(RuntimeError):
    """The data a signal announced never arrived: its sender's connection closed (it died with the
    data unsent). Only a transport that moves data raises it (``--transport distributed``)."""

    def __init__(self, name: str, kind: "Kind"):
        super().__init__(f"{name} died before the data of its {kind.name} arrived")
        self.name, self.kind = name, kind


@dataclass(frozen=True)
class Message:
    kind: Kind
    role: Role
    slot: int
    round: int
    values: tuple[float, ...]

    def matches(self, kind: Kind, role: Role | None = None, slot: int | None = None, round: int | None = None) -> bool:
        return (self.kind == kind and (role is None or self.role == role)
                and (slot is None or self.slot == slot) and (round is None or self.round == round))


def encode(token: bytes, kind: Kind, role: Role, slot: int, round: int, values: Iterable[float] = ()) -> bytes:
    vals = tuple(float(v) for v in values)
    return FRAME.pack(token, kind, role, slot, round, *(vals + (0.0,) * (VALUES - len(vals))))


def decode(token: bytes, frame: bytes) -> Message | None:
    """The message, or None for a frame of the wrong size, token, kind or role."""
    if len(frame) != FRAME.size:
        return None
    tok, kind, role, slot, rnd, *vals = FRAME.unpack(frame)
    known = kind in Kind._value2member_map_ and role in Role._value2member_map_
    if not secrets.compare_digest(tok, token) or not known:
        return None
    return Message(Kind(kind), Role(role), slot, rnd, tuple(vals))


# sun_path holds 108 bytes; a socket's path is FOLDER/NAME, NAME at most this long (discriminator-NN)
LONGEST_NAME = 24
SOCKET_PATH_MAX = 107


def private_folder(prefix: str = "sharedgan-") -> str:
    """A new folder only this user can enter (0700, by mkdtemp), for a run's socket files: no
    other local user can bind a run's address before a role does, connect to it, or even list
    it (abstract sockets, which have no permissions, allowed all three). In the temporary folder,
    or in /tmp when ``TMPDIR`` is too long for a socket path to fit."""
    base = tempfile.gettempdir()
    if len(os.path.join(base, prefix + "x" * 8, "x" * LONGEST_NAME)) > SOCKET_PATH_MAX:
        base = "/tmp"
    return tempfile.mkdtemp(prefix=prefix, dir=base)


class Endpoints:
    """Names the inbox address of every process of one run: a socket file each, in the run's
    private folder (``directory``; made here when not given)."""

    def __init__(self, run_id: str | None = None, directory: str | None = None):
        self.run_id = run_id or secrets.token_hex(8)
        self.directory = directory or private_folder()

    def address(self, name: str) -> str:
        if len(name) > LONGEST_NAME:
            raise ValueError(f"endpoint name {name!r} is longer than {LONGEST_NAME} characters")
        return f"ipc://{os.path.join(self.directory, name)}"

    def spec(self) -> tuple[str, str]:
        return (self.run_id, self.directory)

    def cleanup(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class Mailbox:
    """A process's inbox: receives, validates, and hands out messages in the order asked for.

    Messages that arrive before they are wanted (C's validation before D's, say) wait in
    ``pending``. ``watchdog`` is called on every poll slice, e.g. to exit when the parent died.
    """

    def __init__(self, context: zmq.Context, address: str, token: bytes, watchdog: Callable[[], None] | None = None):
        self.token = token
        self.socket = context.socket(zmq.PULL)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVHWM, 0)
        self.socket.bind(address)
        self.pending: list[Message] = []
        self.rejected = 0
        self.waited = 0.0  # seconds spent in wait(): the "wait" of the time breakdown
        self.watchdog = watchdog
        # the address it is bound at (a tcp:// one asked for port * gets its port here)
        self.address = self.socket.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.arrival: Callable[[Message], None] | None = None  # the transport's: fetch what a signal carries
        self.seen_stop = False  # a STOP came: the runner is stopping the run (it stays set once taken)
        self.lost: list[PeerLost] = []  # signals dropped because their data never came (see PeerLost)

    def _receive(self, timeout_ms: int) -> None:
        if self.socket.poll(timeout_ms, zmq.POLLIN):
            while True:
                try:
                    frame = self.socket.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                msg = decode(self.token, frame)
                if msg is None:
                    self.rejected += 1
                elif msg.kind == Kind.ABORT:
                    raise Aborted()
                elif msg.kind == Kind.RESYNC:
                    raise Resync(msg.round)
                else:
                    self.seen_stop |= msg.kind == Kind.STOP
                    if self.arrival is not None:
                        try:
                            self.arrival(msg)
                        except PeerLost as exc:  # dropped; the signals queued behind it are still read
                            self.lost.append(exc)
                            continue
                    self.pending.append(msg)

    def take(self, predicate: Callable[[Message], bool]) -> Message | None:
        """The first pending message that satisfies ``predicate``, without waiting for new ones."""
        for i, msg in enumerate(self.pending):
            if predicate(msg):
                return self.pending.pop(i)
        return None

    def forget_before(self, round_index: int) -> None:
        """Drop pending round-scoped messages of rounds before ``round_index`` (stale after a resync)."""
        self.pending = [m for m in self.pending if not (m.kind in ROUND_SCOPED and m.round < round_index)]

    def drain(self) -> None:
        """Move every message already queued on the socket into ``pending``."""
        self._receive(0)

    def wait(self, predicate: Callable[[Message], bool], what: str, timeout: float) -> Message:
        start = time.perf_counter()
        deadline = time.monotonic() + timeout
        try:
            while True:
                msg = self.take(predicate)
                if msg is not None:
                    return msg
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SignalTimeout(f"no {what} within {timeout:g} s")
                if self.watchdog is not None:
                    self.watchdog()
                self._receive(int(min(remaining * 1000, POLL_SLICE_MS)) + 1)
                if self.lost:  # a role cannot go on without what a peer announced
                    raise self.lost[0]
        finally:
            self.waited += time.perf_counter() - start

    def wait_for(self, kind: Kind, role: Role | None = None, slot: int | None = None, round: int | None = None,
                 timeout: float = 60.0) -> Message:
        what = f"{kind.name} from {role.name.lower() if role is not None else 'any role'}"
        what += f" for slot {slot}" if slot is not None else ""
        what += f" round {round}" if round is not None else ""
        return self.wait(lambda m: m.matches(kind, role, slot, round), what, timeout)

    def close(self) -> None:
        self.socket.close(linger=0)


class Outbox:
    """PUSH sockets to named peers; sends never block."""

    def __init__(self, context: zmq.Context, token: bytes, role: Role, slot: int, endpoints: Endpoints,
                 peers: Iterable[str]):
        self.token, self.role, self.slot = token, role, slot
        self.sockets: dict[str, zmq.Socket] = {}
        for name in peers:
            sock = context.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 10_000)
            sock.connect(endpoints.address(name))
            self.sockets[name] = sock
        self.dropped = 0

    def send(self, to: str, kind: Kind, slot: int = -1, round: int = -1, values: Iterable[float] = (),
             required: bool = True, as_role: Role | None = None) -> None:
        """Queue one signal without blocking. A full queue (10,000 unread signals) means the peer
        is gone or stuck: a required signal then raises, an optional one is counted as dropped.
        ``as_role``: sign as another role (C's signals from D's process with ``--shared-trunk``)."""
        try:
            signer = self.role if as_role is None else as_role
            self.sockets[to].send(encode(self.token, kind, signer, slot, round, values), zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            if required:
                raise SignalTimeout(f"{to} is not reading its signals ({kind.name} could not be queued)") from None

    def close(self, linger_ms: int = 0) -> None:
        """LINGER 0 on every abnormal path; a role that finished normally passes a short bounded
        linger so its last signals (FINAL, VALIDATION_READY) reach peers that are still reading."""
        for sock in self.sockets.values():
            sock.close(linger=linger_ms)
        self.sockets.clear()

