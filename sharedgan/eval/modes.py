"""Mode coverage and sample quality for 2-D mixtures.

A sample is *high quality* when it lies within 3 std of its nearest mode. A mode is *covered*
when it holds ≥ 1% of the high-quality samples (the *lenient* count, used by older papers,
needs only one sample). ``kl_uniform`` is KL(p̂ ‖ uniform) of the high-quality mode histogram
(0 when every mode holds the same share). The generator × mode table shows which generator holds
which mode; its last column counts each generator's low-quality samples.

The goal the 2-D studies score a run against (``examples/studies/reproduce_2d.py``): every mode
covered, with ≥ 95% high-quality samples on ring8 and ≥ 90% on grid25.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sharedgan.math.seeding import stream

COVER_FRACTION = 0.01


QUALITY_STDS = 3.0


@dataclass
class ModeReport:
    num_samples: int
    num_modes: int
    modes_covered: int
    modes_covered_lenient: int
    high_quality: float  # fraction of samples within 3 std of their nearest mode
    kl_uniform: float
    mode_histogram: np.ndarray  # [modes] high-quality counts
    generator_table: np.ndarray  # [K, modes + 1]

    def summary(self) -> dict:
        return {
            "modes_covered": self.modes_covered,
            "modes_covered_lenient": self.modes_covered_lenient,
            "num_modes": self.num_modes,
            "high_quality": self.high_quality,
            "kl_uniform": self.kl_uniform,
        }


def mode_report(samples: torch.Tensor, generator_ids: torch.Tensor, centers: torch.Tensor, std: float,
                num_generators: int) -> ModeReport:
    samples = samples.double().reshape(len(samples), -1)
    dist = torch.cdist(samples, centers.double())
    nearest_dist, nearest = dist.min(dim=1)
    hq = nearest_dist <= QUALITY_STDS * std
    modes = len(centers)
    hist = torch.bincount(nearest[hq], minlength=modes).numpy()
    n_hq = int(hq.sum())
    covered, kl = histogram_coverage(hist)
    table = np.zeros((num_generators, modes + 1), dtype=np.int64)
    gid = generator_ids.long().numpy()
    col = np.where(hq.numpy(), nearest.numpy(), modes)
    np.add.at(table, (gid, col), 1)
    return ModeReport(len(samples), modes, covered, int((hist >= 1).sum()), n_hq / max(len(samples), 1),
                      kl, hist, table)


def histogram_coverage(hist: np.ndarray) -> tuple[int, float]:
    """(bins holding ≥ COVER_FRACTION of the total, KL(p̂ ‖ uniform) over the bins); (0, inf) for
    an empty histogram. Modes here, predicted classes in ``coverage``."""
    total = int(hist.sum())
    if not total:
        return 0, float("inf")
    p = hist[hist > 0] / total
    return int((hist >= COVER_FRACTION * total).sum()), float(np.sum(p * np.log(p * len(hist))))


def mixture_assignment(num_samples: int, num_generators: int, seed: int, round_index: int) -> torch.Tensor:
    """Which generator makes each evaluation sample: uniform over generators, fixed by the seed."""
    gen = stream(seed, "eval-mixture", round_index)
    return torch.randint(num_generators, (num_samples,), generator=gen)


def mix(eval_samples: torch.Tensor, assignment: torch.Tensor) -> torch.Tensor:
    """Sample i of the mixture is sample i of generator assignment[i]'s fresh evaluation batch."""
    return eval_samples[assignment, torch.arange(len(assignment))]


def format_report(report: ModeReport) -> str:
    """A plain-text table of a report, as ``sharedgan eval`` prints it."""
    lines = [
        f"samples            {report.num_samples}",
        f"modes covered      {report.modes_covered}/{report.num_modes} (≥{COVER_FRACTION:.0%} of high-quality samples)",
        f"  lenient          {report.modes_covered_lenient}/{report.num_modes} (≥1 sample)",
        f"high quality       {report.high_quality:.1%} (within {QUALITY_STDS:g} std of the nearest mode)",
        f"KL(p̂ ‖ uniform)    {report.kl_uniform:.4f}",
        "",
        "generator × mode (high-quality counts; 'low' = low-quality samples)",
    ]
    modes = report.num_modes
    head = "gen  " + " ".join(f"{m:>4d}" for m in range(modes)) + "   low"
    lines.append(head)
    for k, row in enumerate(report.generator_table):
        lines.append(f"{k:>3d}  " + " ".join(f"{int(v):>4d}" for v in row[:modes]) + f"  {int(row[modes]):>4d}")
    return "\n".join(lines)

