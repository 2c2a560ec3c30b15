import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers.launch import Launch  # noqa: E402
from helpers.leaks import Snapshot, wait_clean  # noqa: E402


def pytest_collection_modifyitems(items):
    """A test that launches a run or checks for leaked processes starts processes, wherever it is."""
    for item in items:
        if {"launch", "leak_check"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.processes)


@pytest.fixture(autouse=True, scope="session")
def private_user_cache(tmp_path_factory):
    """What eval keeps in the user's cache (sharedgan.storage.files.user_cache) goes to a folder of
    the test session, for this process and the commands it starts."""
    import os
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("user-cache"))
    return Path(os.environ["XDG_CACHE_HOME"])


@pytest.fixture
def leak_check():
    """Asserts that the test left no process, /dev/shm entry or socket behind."""
    before = Snapshot.take()
    yield before
    leaks = wait_clean(before)
    assert not leaks, f"left behind: {leaks}"


@pytest.fixture
def launch(tmp_path):
    started = []

    def start(*args, out=None, env=None, resume=False):
        job = Launch(out or tmp_path / f"run{len(started)}", *args, env=env, resume=resume)
        started.append(job)
        return job

    yield start
    for job in started:
        if job.proc.poll() is None:
            job.proc.send_signal(signal.SIGKILL)
            job.proc.wait()
