import os
import subprocess
import tempfile
import time

import pytest
import zmq

from sharedgan.runtime.messages import (
    FRAME,
    Aborted,
    Endpoints,
    Kind,
    Mailbox,
    Outbox,
    PeerLost,
    Role,
    SignalTimeout,
    decode,
    encode,
)

TOKEN = b"t" * 16


@pytest.fixture
def plane():
    context = zmq.Context()
    endpoints = Endpoints()
    inbox = Mailbox(context, endpoints.address("d"), TOKEN)
    out = Outbox(context, TOKEN, Role.GENERATOR, 3, endpoints, ["d"])
    yield context, endpoints, inbox, out
    inbox.close()
    out.close()
    context.term()
    endpoints.cleanup()


def test_round_trip_and_fixed_size():
    frame = encode(TOKEN, Kind.ROUND_DONE, Role.GENERATOR, 2, 77, (1.5, 0.25))
    assert len(frame) == FRAME.size == 76  # token 16, kind, role, slot 2, round 8, six float64 values
    msg = decode(TOKEN, frame)
    assert (msg.kind, msg.role, msg.slot, msg.round, msg.values) == (Kind.ROUND_DONE, Role.GENERATOR, 2, 77,
                                                                     (1.5, 0.25, 0.0, 0.0, 0.0, 0.0))


def test_wrong_token_size_or_kind_is_dropped():
    assert decode(b"x" * 16, encode(TOKEN, Kind.READY, Role.RUNNER, 0, 0)) is None
    assert decode(TOKEN, encode(TOKEN, Kind.READY, Role.RUNNER, 0, 0) + b"!") is None
    assert decode(TOKEN, FRAME.pack(TOKEN, 99, 0, 0, 0, *[0.0] * 6)) is None


def test_rogue_frames_are_counted_not_delivered(plane):
    context, endpoints, inbox, out = plane
    rogue = context.socket(zmq.PUSH)
    rogue.setsockopt(zmq.LINGER, 0)
    try:
        rogue.connect(endpoints.address("d"))
        rogue.send(encode(b"r" * 16, Kind.SAMPLE_READY, Role.GENERATOR, 3, 0))
        rogue.send(b"short")
        out.send("d", Kind.SAMPLE_READY, 3, 0)
        msg = inbox.wait_for(Kind.SAMPLE_READY, Role.GENERATOR, 3, 0, timeout=5)
        assert msg.slot == 3
        # the rogue's pipe is not ordered with ours: wait (bounded) until both frames were seen
        deadline = time.monotonic() + 5
        while inbox.rejected < 2 and time.monotonic() < deadline:
            inbox._receive(50)
        assert inbox.rejected == 2 and not inbox.pending  # counted, never delivered
    finally:
        rogue.close()


def test_out_of_order_messages_wait_their_turn(plane):
    _, _, inbox, out = plane
    out.send("d", Kind.VALIDATION_READY, 3, 5)  # arrives first, wanted second
    out.send("d", Kind.SAMPLE_READY, 3, 5)
    assert inbox.wait_for(Kind.SAMPLE_READY, timeout=5).round == 5
    assert inbox.wait_for(Kind.VALIDATION_READY, timeout=5).round == 5


def test_wait_is_bounded(plane):
    _, _, inbox, _ = plane
    t0 = time.monotonic()
    with pytest.raises(SignalTimeout, match="SAMPLE_READY"):
        inbox.wait_for(Kind.SAMPLE_READY, timeout=0.3)
    assert time.monotonic() - t0 < 2.0


def test_a_signal_whose_data_never_came_is_dropped_and_the_rest_still_read(plane):
    """--transport distributed: a sender that died with its data unsent loses that signal only;
    the runner still reads what was queued behind it (a checkpoint those complete is published),
    and a role's wait fails at once, naming the peer."""
    _, _, inbox, out = plane

    def arrival(msg):  # the transport's receive of what EVAL_READY announced: the sender is gone
        if msg.kind == Kind.EVAL_READY:
            raise PeerLost("generator-3", msg.kind)
    inbox.arrival = arrival
    for kind in (Kind.EVAL_READY, Kind.CHECKPOINT_SAVED, Kind.ROUND_DONE):
        out.send("d", kind, 3, 19)
    deadline = time.monotonic() + 5
    while len(inbox.pending) < 2 and time.monotonic() < deadline:
        inbox._receive(50)
    assert [m.kind for m in inbox.pending] == [Kind.CHECKPOINT_SAVED, Kind.ROUND_DONE]
    assert [str(e) for e in inbox.lost] == ["generator-3 died before the data of its EVAL_READY arrived"]
    with pytest.raises(PeerLost, match="generator-3"):
        inbox.wait_for(Kind.SAMPLE_READY, timeout=5)


def test_abort_interrupts_a_wait(plane):
    context, endpoints, inbox, _ = plane
    runner = Outbox(context, TOKEN, Role.RUNNER, -1, endpoints, ["d"])
    runner.send("d", Kind.ABORT)
    with pytest.raises(Aborted):
        inbox.wait_for(Kind.SAMPLE_READY, timeout=5)
    runner.close()


def test_endpoints_are_files_in_a_private_folder_that_goes():
    endpoints = Endpoints()
    folder = endpoints.directory
    assert oct(os.stat(folder).st_mode & 0o777) == "0o700" and os.stat(folder).st_uid == os.getuid()
    assert endpoints.address("d") == f"ipc://{folder}/d"
    context = zmq.Context()
    inbox = Mailbox(context, endpoints.address("d"), TOKEN)
    out = Outbox(context, TOKEN, Role.RUNNER, -1, endpoints, ["d"])
    out.send("d", Kind.STOP)
    assert inbox.wait_for(Kind.STOP, timeout=5).role == Role.RUNNER
    inbox.close()
    out.close()
    context.term()
    endpoints.cleanup()
    assert not os.path.exists(folder)


def test_a_long_tmpdir_still_fits_a_socket_path(monkeypatch, tmp_path):
    deep = tmp_path / ("x" * 90)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    endpoints = Endpoints()
    try:
        assert len(endpoints.address("discriminator-12")) - len("ipc://") <= 107
        context = zmq.Context()
        inbox = Mailbox(context, endpoints.address("discriminator-12"), TOKEN)  # binds: the path fits
        inbox.close()
        context.term()
    finally:
        endpoints.cleanup()


OTHER_USER = """
import socket, sys
path = sys.argv[1][len("ipc://"):]
if path.startswith("@"):  # ZeroMQ's spelling of Linux's abstract namespace (no permissions there)
    path = "\\0" + path[1:]
for what in ("bind", "connect"):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # what ZeroMQ's ipc:// is made of
    try:
        getattr(s, what)(path)
        print(what, "ok")
    except OSError as exc:
        print(what, "refused", exc.errno)
"""
# the other user's interpreter: the system's (a virtual environment under /root is not theirs to run)
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(SYSTEM_PYTHON),
                    reason="needs root to run a process as another user (CI runs as root), and a system python3")
def test_another_local_user_can_neither_take_nor_reach_a_run_s_endpoint():
    """The attack abstract sockets allowed: another user binds a run's address before the role
    does (the run dies at start-up) or connects to it. In a 0700 folder both are refused."""
    import pwd
    nobody = pwd.getpwnam("nobody")
    endpoints = Endpoints()
    context = zmq.Context()
    inbox = Mailbox(context, endpoints.address("runner"), TOKEN)
    try:
        def as_nobody():
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
        for name in ("not-yet-bound", "runner"):
            res = subprocess.run([SYSTEM_PYTHON, "-c", OTHER_USER, endpoints.address(name)], capture_output=True,
                                 text=True, timeout=60, preexec_fn=as_nobody, cwd="/")
            assert "bind refused 13" in res.stdout and "connect refused 13" in res.stdout, res.stdout + res.stderr
        assert os.listdir(endpoints.directory) == ["runner"]  # the runner's own inbox, untouched
    finally:
        inbox.close()
        context.term()
        endpoints.cleanup()
