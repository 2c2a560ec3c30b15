"""``--classifier-negatives N``: the rows of the other slots that head k contrasts slot k with.

Algorithm 1 taken literally runs every one of the K·m samples of a round through C for each of C's
K steps, so C costs K² batches a round. With N negatives, head k's step sees slot k's m samples and
N samples of the others, spread as evenly as the slots allow (⌊N/c⌋ from each of the c others, one
more from N mod c of them, picked at random) and drawn without replacement: C's cost is then linear
in K. Each side of head k's loss is a mean of its own, so the estimator stays unbiased; N only sets
its variance. The draw comes from the stream (seed, "classifier-negatives", k, round), so every
engine draws the same rows.
"""

from __future__ import annotations

import torch

from sharedgan.math.seeding import stream


def negative_rows(seed: int, k: int, round_index: int, others: list[int], batch: int, n: int) -> torch.Tensor:
    """For head ``k`` in round ``round_index``: the sorted flat indices ``j·batch + r`` (int64) of
    the ``n`` rows drawn from the batches of the slots ``others`` (every row when n ≥ len(others)·batch).

    One draw for all slots, not one per slot: head k's step must cost the same at K = 64 as at K = 4."""
    if n < 1:
        raise ValueError(f"classifier negatives must be ≥ 1, got {n}")
    slots = torch.as_tensor(others, dtype=torch.int64).reshape(-1, 1)
    c = len(others)
    if n >= c * batch:
        return (slots * batch + torch.arange(batch)).flatten()
    gen = stream(seed, "classifier-negatives", k, round_index)
    counts = torch.full((c,), n // c, dtype=torch.int64)
    counts[torch.randperm(c, generator=gen)[:n % c]] += 1
    most = -(-n // c)
    # the positions of a slot's `most` largest uniforms: `most` of its rows without replacement
    rows = torch.rand(c, batch, generator=gen).topk(most, dim=1).indices
    keep = torch.arange(most) < counts.reshape(-1, 1)
    return (slots * batch + rows)[keep].sort().values
