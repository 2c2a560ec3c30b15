"""The leak check itself: each kind of leak, planted on purpose, must be reported."""
import os
import socket
import subprocess
import tempfile
import time

import pytest
import zmq

from helpers.leaks import Snapshot, run_processes, wait_clean

pytestmark = pytest.mark.processes  # every test here starts processes (see pytest.ini)


def test_planted_process_is_found():
    before = Snapshot.take()
    child = subprocess.Popen(["sleep", "30"], env={**os.environ, "SHAREDGAN_RUN": "planted"})
    try:
        # exec wakes Popen before the kernel has set up the new image's environment, so for a moment
        # /proc/PID/environ can read empty: wait until the marker is readable, then check
        deadline = time.monotonic() + 5
        while child.pid not in run_processes() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert any("processes" in leak for leak in Snapshot.leaks(before, Snapshot.take()))
    finally:
        child.kill()
        child.wait()
    assert not wait_clean(before)


def test_planted_shm_entry_is_found():
    before = Snapshot.take()
    path = "/dev/shm/sharedgan-planted-leak"
    open(path, "w").close()
    try:
        assert any("shm" in leak for leak in Snapshot.leaks(before, Snapshot.take()))
    finally:
        os.unlink(path)


def test_planted_abstract_socket_is_found():
    before = Snapshot.take()
    context = zmq.Context()
    sock = context.socket(zmq.PULL)
    sock.bind("ipc://@sharedgan-planted")
    try:
        assert any("sockets" in leak for leak in Snapshot.leaks(before, Snapshot.take()))
    finally:
        sock.close(linger=0)
        context.term()
    assert not Snapshot.leaks(before, Snapshot.take())


def test_planted_socket_file_is_found():
    before = Snapshot.take()
    folder = tempfile.mkdtemp(prefix="sharedgan-")
    s = socket.socket(socket.AF_UNIX)
    s.bind(os.path.join(folder, "inbox"))
    try:
        assert any("files" in leak for leak in Snapshot.leaks(before, Snapshot.take()))
    finally:
        s.close()
        os.unlink(os.path.join(folder, "inbox"))
        os.rmdir(folder)


def test_planted_fd_is_found():
    before = Snapshot.take()
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        assert any("fds" in leak for leak in Snapshot.leaks(before, Snapshot.take(), fds=True))
    finally:
        os.close(fd)
    assert not Snapshot.leaks(before, Snapshot.take(), fds=True)
