"""``sharedgan launch --transport distributed`` on one rank of a torchrun job.

Rank 0 runs the runner: the same :func:`sharedgan.api.train` as on one machine, its supervisor
given the cluster (run.h5, evaluation, checkpoint manifests, heartbeats, STOP). Every other rank
runs one role: the same role code and loop as a child process of the parallel engine
(:func:`sharedgan.engines.parallel.child.play`), with a local buffer filled by the point-to-point
transport. After torchrun restarted the group (``--max-restarts``), rank 0 resumes the run from its
newest intact checkpoint by itself.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

import torch
import zmq

from sharedgan.cluster.torchrun import Cluster, bind_inbox, made_by_this_job
from sharedgan.config import TrainConfig
from sharedgan.runtime.buffer import SlotBuffer, fields_of
from sharedgan.runtime.procgroup import output_to
from sharedgan.runtime.transport import PointToPoint
from sharedgan.storage import checkpoint
from sharedgan.storage.rundir import log_path

log = logging.getLogger("sharedgan")

JOB_GRACE = 10.0  # seconds a role waits, after a SIGTERM or SIGHUP, for the runner to say it is stopping the run


def launch_rank(config: TrainConfig, force: bool, resume: bool, progress: bool, roles_here: tuple[str, ...] = (),
                bind: str | None = None):
    """Run this rank's part; rank 0 returns the :class:`~sharedgan.api.RunResult`, the others exit."""
    from sharedgan.api import train
    cluster = Cluster(roles_here, bind)
    try:
        if cluster.rank != 0:
            code = serve(cluster)
            sys.stdout.flush()
            sys.exit(code)
        if cluster.env.restart and made_by_this_job(Path(config.out)):
            # torchrun restarted the group: go on from the newest intact checkpoint (or start again)
            resume = checkpoint.latest(Path(config.out)) is not None
            force = not resume
        return train(config, force=force, progress=progress, resume=resume, cluster=cluster)
    finally:
        cluster.close()


def serve(cluster: Cluster) -> int:
    """A role's rank: agree on the start with rank 0, then play the role; return the exit code."""
    from sharedgan.engines.parallel.child import Wiring, play
    started = cluster.follow()
    config = TrainConfig.from_dict(json.loads(started["config"]))
    run_dir = cluster.see_run_dir()
    context = zmq.Context()
    inbox = bind_inbox(context, cluster, cluster.token)
    watchdog = prepare_rank(str(log_path(run_dir, cluster.name)), config.threads, lambda: inbox.seen_stop)
    log.info("%s started on rank %d, pid %d", cluster.name, cluster.rank, os.getpid())
    cluster.connect(inbox.address)
    shape = tuple(started["sample_shape"])
    wiring = Wiring(context, inbox, cluster, cluster.token, watchdog,
                    transport=lambda buf: PointToPoint(buf, cluster.ranks))
    return play(cluster.name, config, run_dir, wiring,
                lambda: SlotBuffer.allocate(fields_of(config, shape), config.k, "cpu", shared=False),
                started["restore"], 0, {})


def prepare_rank(log_file: str, threads: int, stopping):
    """A role's rank: its output to its log, and the job's signals left to the runner. SIGINT (a
    terminal's, which reaches every rank) is ignored; after a SIGTERM or SIGHUP (torchrun's, or the
    job's), the role goes on while the runner stops the run (``stopping()``: a STOP came) and dies
    of the signal if it does not within :data:`JOB_GRACE` s. Returns the watchdog of its waits."""
    output_to(log_file)
    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pending: list[tuple[int, float]] = []
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: pending.append((signum, time.monotonic())))

    def watchdog() -> None:
        if pending and not stopping() and time.monotonic() - pending[0][1] > JOB_GRACE:
            signum = pending[0][0]
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    return watchdog
