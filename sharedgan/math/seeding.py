"""Counter-based random streams.

Every random draw in sharedgan comes from a stream named by (run seed, purpose, role index,
round). A role re-seeds its private generator from that name each round instead of carrying
one long-lived stream, so

* the sequential and parallel engines draw identical numbers no matter which process runs a
  step or in what interleaving, and
* the round number *is* the RNG state: a checkpoint at round n resumes bit-for-bit without
  having to save and restore generator states.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def derive_seed(seed: int, *path: int | str) -> int:
    """A 63-bit seed for the stream named by ``(seed, *path)``; strings are hashed stably."""
    key = tuple(zlib.crc32(p.encode()) if isinstance(p, str) else int(p) for p in path)
    state = np.random.SeedSequence(entropy=int(seed), spawn_key=key).generate_state(1, np.uint64)
    return int(state[0]) >> 1


def stream(seed: int, *path: int | str, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` for the stream named by ``(seed, *path)``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, *path))
    return gen

