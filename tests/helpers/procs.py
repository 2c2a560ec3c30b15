"""Targets for processes that tests start through sharedgan's ProcessGroup."""
import time


def idle(seconds: float) -> None:
    time.sleep(seconds)
