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


def negative_rows(seed: int, k: int, round_index: int, others: list[int], batch: int,
                  n: int) -> dict[int, torch.Tensor]:
    """For head ``k`` in round ``round_index``: slot → sorted row indices (int64) into its batch of
    ``batch``, for every slot in ``others``, ``n`` rows in all (every row when n ≥ len(others)·batch)."""
    if n < 1:
        raise ValueError(f"classifier negatives must be ≥ 1, got {n}")
    c = len(others)
    if c == 0:
        return {}
    if n >= c * batch:
        return {j: torch.arange(batch) for j in others}
    gen = stream(seed, "classifier-negatives", k, round_index)
    counts = torch.full((c,), n // c, dtype=torch.int64)
    counts[torch.randperm(c, generator=gen)[:n % c]] += 1
    return {j: torch.randperm(batch, generator=gen)[:int(counts[i])].sort().values
            for i, j in enumerate(others) if counts[i] > 0}
