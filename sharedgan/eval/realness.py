"""Realness per generator: precision, recall, density and coverage (PRDC) against real images.

Spread (``eval.spread``) sees a generator that draws one picture whatever its noise; it cannot see
one that draws varied noise, and the coverage classifier reads such noise as confident digits. So
every image evaluation also asks, per generator and for the mixture, how many of its samples lie
where real images lie — in the feature space of the coverage classifier (its last hidden layer,
the global average of its third stage: trained on the data set's own labels, it works offline).

With R the reference real features, F the fake ones and NND_k(x) the distance from x to its k-th
nearest neighbour in its own set (Kynkäänniemi et al. 2019; Naeem et al. 2020):

* precision = share of fakes inside some ball B(r, NND_k(r)) of a real r: *are the fakes real?*
* recall    = share of reals inside some ball B(f, NND_k(f)) of a fake f: *is the data covered?*
* density   = (1 / kM) Σ_f #{r : f ∈ B(r, NND_k(r))}: precision that counts how many real
  neighbourhoods hold a fake (≈ 1 for fakes distributed as the data, may exceed 1);
* coverage  = share of reals whose ball holds at least one fake.

Every figure of one report uses the same k and the same number M of fakes per group (a generator,
the mixture, and *real held-out images* — the images the classifier never trained on — as the
baseline a good generator should reach): recall and coverage grow with M, so only equal M compares.
The reference set is the classifier's training images (at most ``MAX_REFERENCE``), never the
held-out ones, so the baseline is not flattered by zero distances.

A generator is *unreal* when its precision is below ``UNREAL``, calibrated on the 1,797 real
digits (``examples/studies/calibrate_realness.py``, M = 179; the table in docs/images.md):
held-out real digits score 0.93, digits blurred by a 1.5 px Gaussian 0.80 and by 2 px 0.44, pixel
noise, noise patterns and the generators seen drawing them 0–0.32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sharedgan.data.images import from_uint8
from sharedgan.math.seeding import stream

K_NEIGHBOURS = 5  # Naeem et al.'s choice for density and coverage


MAX_REFERENCE = 5000  # pairwise distances among the reference: 25 M floats at most


MAX_FAKES = 1000


UNREAL = 0.5


METRICS = ("precision", "recall", "density", "coverage")


def kth_neighbour_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """NND_k of every row among the others of ``features`` [N, F] (itself excluded)."""
    dist = torch.cdist(features, features)
    return dist.topk(k + 1, dim=1, largest=False).values[:, k]  # column 0 is the row itself


def prdc(real: torch.Tensor, real_radii: torch.Tensor, fake: torch.Tensor, k: int) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` [M, F] against ``real`` [R, F] (whose
    k-NN radii are ``real_radii``). Recall is NaN when M ≤ k (no k-th fake neighbour)."""
    d = torch.cdist(real, fake)  # [R, M]
    inside = d <= real_radii[:, None]  # fake j inside real i's ball
    out = {"precision": float(inside.any(0).double().mean()),
           "density": float(inside.sum(0).double().mean()) / k,
           "coverage": float((d.min(1).values <= real_radii).double().mean()),
           "recall": float("nan")}
    if len(fake) > k:
        fake_radii = kth_neighbour_radii(fake, k)
        out["recall"] = float((d <= fake_radii[None, :]).any(1).double().mean())
    return out


@dataclass
class RealnessReport:
    k: int  # neighbours
    m: int  # fakes per group (and held-out reals in the baseline)
    reference: int  # real images the balls are drawn around
    generators: dict[str, np.ndarray]  # metric → [K] (NaN where a generator drew fewer than 2 samples)
    mixture: dict[str, float]
    real: dict[str, float]  # held-out real images judged like a generator

    def unreal(self) -> list[int]:
        return unreal(self.generators["precision"])

    def series(self) -> dict:
        """What run.h5 keeps of an evaluation: ``precision`` … [K] and ``mixture_precision`` …"""
        out: dict = {name: self.generators[name] for name in METRICS}
        out.update({f"mixture_{name}": self.mixture[name] for name in METRICS})
        return out


class RealnessJudge:
    """The reference features and their radii, computed once, and the held-out baseline per M."""

    def __init__(self, embed, reference_images, held_out_images, seed: int = 0, k: int = K_NEIGHBOURS):
        """``embed``: float images [N, C, H, W] in [−1, 1] → features [N, F]; images: uint8
        [N, H, W, C] (arrays or mapped datasets)."""
        self.embed, self.k, self.seed = embed, k, seed
        ref = _pick(reference_images, MAX_REFERENCE, seed, "realness-reference")
        if len(ref) <= k:
            raise ValueError(f"realness needs more than k = {k} real reference images; there are {len(ref)}")
        self.reference = self._features(ref)
        self.radii = kth_neighbour_radii(self.reference, k)
        self.held_out = self._features(np.asarray(held_out_images))
        self._baselines: dict[int, dict[str, float]] = {}

    def _features(self, images) -> torch.Tensor:
        if isinstance(images, np.ndarray) and images.dtype == np.uint8:
            images = from_uint8(images)
        with torch.no_grad():
            return torch.cat([self.embed(images[i:i + 512]).double() for i in range(0, len(images), 512)])

    def samples_per_group(self, per_generator: int) -> int:
        """M: what every group of a report is judged on (the held-out count bounds it)."""
        return max(0, min(per_generator, len(self.held_out), MAX_FAKES))

    def baseline(self, m: int) -> dict[str, float]:
        if m not in self._baselines:
            pick = torch.randperm(len(self.held_out), generator=stream(self.seed, "realness-held-out"))[:m]
            self._baselines[m] = prdc(self.reference, self.radii, self.held_out[pick], self.k)
        return self._baselines[m]

    def report(self, samples: torch.Tensor, generator_ids: torch.Tensor, num_generators: int) -> RealnessReport:
        """PRDC of each generator's first M samples (float [N, C, H, W]) and of M drawn from all of
        them at random (the mixture, whatever order the samples come in)."""
        ids = generator_ids.long()
        counts = [int((ids == g).sum()) for g in range(num_generators)]
        judged = [g for g in range(num_generators) if counts[g] >= 2]  # one with fewer is left out, alone
        m = self.samples_per_group(min((counts[g] for g in judged), default=0))
        feats = self._features(samples.float())
        per = {name: np.full(num_generators, np.nan) for name in METRICS}
        nothing = dict.fromkeys(METRICS, float("nan"))
        if m < 2:
            return RealnessReport(self.k, m, len(self.reference), per, nothing, nothing)
        for g in judged:
            for name, value in prdc(self.reference, self.radii, feats[ids == g][:m], self.k).items():
                per[name][g] = value
        pick = torch.randperm(len(feats), generator=stream(self.seed, "realness-mixture"))[:m]
        mixture = prdc(self.reference, self.radii, feats[pick], self.k)
        return RealnessReport(self.k, m, len(self.reference), per, mixture, self.baseline(m))


def unreal(precision) -> list[int]:
    """The generators whose precision is below UNREAL (NaN: not judged, not flagged)."""
    return [g for g, p in enumerate(precision) if p < UNREAL]


def _pick(images, n: int, seed: int, purpose: str) -> np.ndarray:
    pick = torch.randperm(len(images), generator=stream(seed, purpose))[:n]
    return np.asarray(images[np.sort(pick.numpy())])


def format_realness(report: RealnessReport) -> str:
    K = len(report.generators["precision"])
    lines = [f"realness (PRDC in the coverage classifier's features; k = {report.k}, {report.m} samples per row, "
             f"{report.reference} real reference images)",
             f"{'':9s}" + "".join(f"{name:>10s}" for name in METRICS)]
    for g in range(K):
        lines.append(f"gen {g:<5d}" + "".join(f"{report.generators[name][g]:>10.3f}" for name in METRICS))
    lines.append(f"{'mixture':9s}" + "".join(f"{report.mixture[name]:>10.3f}" for name in METRICS))
    lines.append(f"{'real':9s}" + "".join(f"{report.real[name]:>10.3f}" for name in METRICS)
                 + "   (held-out real images: what a perfect generator scores)")
    gone = report.unreal()
    if report.m < 2:
        return lines[0] + "\nnot judged: fewer than 2 samples of every generator (draw more with --n)"
    lines.append(f"unreal              {len(gone)}/{K}"
                 + (f" (generator {', '.join(map(str, gone))}: precision < {UNREAL:g}, its samples lie where no "
                    "real image does)" if gone else f" (no generator below precision {UNREAL:g})"))
    return "\n".join(lines)
