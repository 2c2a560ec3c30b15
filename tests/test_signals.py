import os
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


def test_abort_interrupts_a_wait(plane):
    context, endpoints, inbox, _ = plane
    runner = Outbox(context, TOKEN, Role.RUNNER, -1, endpoints, ["d"])
    runner.send("d", Kind.ABORT)
    with pytest.raises(Aborted):
        inbox.wait_for(Kind.SAMPLE_READY, timeout=5)
    runner.close()


def test_abstract_endpoints_leave_no_file(plane):
    _, endpoints, _, _ = plane
    address = endpoints.address("d")
    assert address.startswith("ipc://@sharedgan-")
    with open("/proc/net/unix") as f:
        assert any(f"@sharedgan-{endpoints.run_id}-d" in line for line in f)
    assert not os.path.exists(address[len("ipc://"):])


def test_off_linux_endpoints_are_files_in_a_private_folder_that_goes(monkeypatch):
    monkeypatch.setattr("sys.platform", "darwin")  # no abstract namespace there
    endpoints = Endpoints()
    folder = endpoints.directory
    assert folder is not None and oct(os.stat(folder).st_mode & 0o777) == "0o700"
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
