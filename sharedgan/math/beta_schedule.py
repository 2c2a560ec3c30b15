"""β_k, the weight of the classifier term in J^{G_k} (PGAN §3.3, "shrinkage").

Every schedule satisfies β_k ≤ β0. With t the round (0-based) and Δ_k = J^{G_k} − mean_j J^{G_j}
taken from the *previous* round's losses (all generators' losses of round t−1 are in the slot
stats by the time generator k needs β for round t; at t = 0, Δ_k = 0):

* ``constant``: β_k = β0
* ``time``:     β_k = β0 · exp(−λ t)
* ``loss-gap``: β_k = β0 · 2σ(−|Δ_k| / τ)   (a generator far from the others is being forced out
  and its β falls, as §3.3 describes)
* ``combined``: β_k = β0 · exp(−λ t) · 2σ(−|Δ_k| / τ)   (the paper's stated preference)

λ defaults to ln(100) / rounds, so the time factor ends at 1% of β0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("constant", "time", "loss-gap", "combined")


def default_decay(rounds: int) -> float:
    """λ such that exp(−λ · rounds) = 0.01."""
    return math.log(100.0) / max(rounds, 1)


def _two_sigmoid_neg(x: float) -> float:
    """2σ(−x) for x ≥ 0, stable for large x."""
    return 2.0 / (1.0 + math.exp(x)) if x < 700 else 0.0


@dataclass(frozen=True)
class BetaSchedule:
    kind: str
    beta0: float = 1.0
    decay: float = 0.0  # λ, per round
    tau: float = 1.0  # τ, loss units

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown beta schedule {self.kind!r}; choose one of {', '.join(SCHEDULES)}")

    def __call__(self, round_index: int, loss_gap: float = 0.0) -> float:
        """β for one generator at ``round_index`` given its previous-round gap Δ_k."""
        beta = self.beta0
        if self.kind in ("time", "combined"):
            beta *= math.exp(-self.decay * round_index)
        if self.kind in ("loss-gap", "combined"):
            beta *= _two_sigmoid_neg(abs(loss_gap) / self.tau)
        return beta


def loss_gaps(previous_losses) -> list[float]:
    """Δ_k = J^{G_k} − mean_j J^{G_j} for every k, from one round's generator losses."""
    losses = [float(v) for v in previous_losses]
    mean = sum(losses) / len(losses)
    return [v - mean for v in losses]

