"""The process group on its own: a fork server lost at any moment costs no child, and is replaced."""
import os
import signal
import time
from multiprocessing import forkserver

import pytest

from helpers.procs import idle
from sharedgan.runtime import procgroup
from sharedgan.runtime.procgroup import ProcessGroup

pytestmark = pytest.mark.processes  # (see pytest.ini)


def _until_dead(pid: int, timeout: float = 10.0) -> None:
    """Until ``pid`` has exited (a zombie: nobody has reaped it yet, which is what is under test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return
        time.sleep(0.01)
    raise AssertionError(f"{pid} still running after {timeout} s")


@pytest.mark.parametrize("when", ["reported before the next start", "replaced by the next start first"])
def test_a_lost_fork_server_is_reported_and_replaced(tmp_path, leak_check, when):
    if forkserver._forkserver._forkserver_pid is not None:
        pytest.skip("this test process already runs a fork server (the group would spawn instead)")
    group = ProcessGroup("procgroup-test")
    try:
        group.spawn("a", idle, (60,), str(tmp_path / "a.log"))
        server = forkserver._forkserver._forkserver_pid
        os.kill(server, signal.SIGKILL)
        _until_dead(server)
        if when == "reported before the next start":
            assert group.lost_server() == f"the fork server (pid {server}) was killed by SIGKILL (exit code -9)"
            group.spawn("b", idle, (60,), str(tmp_path / "b.log"))
        else:  # multiprocessing reaps the old server and starts another inside the spawn
            group.spawn("b", idle, (60,), str(tmp_path / "b.log"))
            assert group.lost_server() == f"the fork server (pid {server}) exited"
        assert group.lost_server() is None  # once
        procgroup._server_exit(os.getpid())  # the servers' exit handler, in the runner: it must not act
        assert os.path.isdir(group.folder)
        renewed = forkserver._forkserver._forkserver_pid
        assert renewed not in (None, server)
        assert sorted(group.running()) == ["a", "b"] and group.reap() == []  # nobody died with the server
        group.kill("a")
        deadline = time.monotonic() + 10
        while "a" in group.running() and time.monotonic() < deadline:
            group.wait((), 0.05)
        assert group.reap() == [("a", -signal.SIGKILL)]  # its true exit code: it is this process's child now
    finally:
        group.shutdown(grace=0.1)
    assert forkserver._forkserver._forkserver_pid is None and not os.path.exists(group.folder)
