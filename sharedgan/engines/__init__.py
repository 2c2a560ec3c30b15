"""Engines decide where tensors live and when each role's step runs; the steps themselves live in
:mod:`sharedgan.roles` and are the same for every engine.

* ``sequential``: one process, the role steps in the fixed order of a round; no IPC, no waits.
* ``parallel``: one process per role, lock-step rounds through the shared slot buffer and
  ZeroMQ signals. With the same seed and threads it reproduces the sequential engine exactly.
* ``batched``: the strong in-process baseline a user might pick instead; **not Algorithm 1**. D
  scores all K slots in one forward pass with the D of the round's start and takes one step on
  all K slots (Algorithm 1: slot k is scored by the D after k updates, and D takes K steps); C
  takes one step on the sum of its K head losses (Algorithm 1: K steps, each followed by scoring
  its slot). Where D or C has batch norm (the DCGAN models) one pass over K·m samples also
  normalises across slots. With K = 1 it is the sequential engine exactly.
* ``async``: one process per generator plus R D and R C processes (replicas) that serve slots as
  they arrive, dispatched by the runner (see engines.asynchronous); not deterministic. With
  ``--serve-batch B`` > 1 a D or C process takes up to B waiting slots in one step, which departs
  from Algorithm 1 as ``batched`` does.
"""

from __future__ import annotations

from pathlib import Path

from sharedgan.config import TrainConfig, fingerprint
from sharedgan.storage import checkpoint


def eval_due(config: TrainConfig, round_index: int, final: bool) -> bool:
    return final or (round_index + 1) % config.eval_every == 0


def checkpoint_due(config: TrainConfig, round_index: int, final: bool) -> bool:
    return final or (round_index + 1) % config.checkpoint_every == 0


def mean(values: list[float]) -> float:
    """The round's loss of D or C: the mean over its K updates (same order in every engine)."""
    return sum(values) / len(values)



def publish_checkpoint(config: TrainConfig, run_dir: Path, round_index: int, recorder) -> None:
    """Every role's file of ``round_index`` is on disk: write the manifest (the settings the tensors
    depend on, the training time so far, the sample shape, so that a reader of the run needs no
    data set to sample it), publish the checkpoint, and rewrite run.h5 to match it."""
    checkpoint.finalize(run_dir, round_index, config.roles, config.keep_checkpoints,
                        {"fingerprint": fingerprint(config), "train_seconds": recorder.train_seconds(),
                         "sample_shape": list(recorder.dataset.sample_shape)})
    recorder.write()
