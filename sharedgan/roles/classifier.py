"""The adjustment component C: one network whose logits say which generator a sample came from.

``--classifier ovr`` (PGAN): K one-vs-rest heads, head k's logit c_k(x) says "x comes from the
other generators G_-k"; MGAN's variants (``softmax``, ``one-vs-all``, ``pairwise``) are in
:mod:`sharedgan.math.losses`, which holds every objective.
"""

from __future__ import annotations

import torch

from sharedgan.config import TrainConfig
from sharedgan.math.losses import classifier_step_terms, classifier_term, input_gradient
from sharedgan.math.negatives import negative_rows
from sharedgan.models.spec import ModelSpec
from sharedgan.roles.base import CPU, RoleState, check_finite
from sharedgan.roles.build import make_model, make_optimizer
from sharedgan.runtime.buffer import SlotBuffer, as_float


def _check_round(buf: SlotBuffer, n: int, jobs: list[tuple[int, int]] = ()) -> None:
    """The lock-step engines' premise: every slot (and every job) holds round n."""
    if any(r != n for _, r in jobs) or not bool((buf.sample_round == n).all()):
        raise RuntimeError(f"classifier: slots hold rounds {buf.sample_round.tolist()}, expected {n}")


class SampleCache:
    """C's private copy of every generator's latest batch (engine async): C contrasts slot k with
    the others, and in the async engine their slots may be mid-write while C serves k."""

    def __init__(self, num_slots: int, batch_shape: tuple[int, ...], device: torch.device = CPU):
        self.samples = torch.zeros(num_slots, *batch_shape, device=device)
        self.seen = torch.zeros(num_slots, dtype=torch.bool)

    def take(self, buf: SlotBuffer, k: int, round_index: int) -> torch.Tensor:
        """Copy slot k (round ``round_index``, which its generator keeps until C answers) in."""
        if int(buf.sample_round[k]) != round_index:
            raise RuntimeError(f"classifier: slot {k} holds round {int(buf.sample_round[k])}, expected {round_index}")
        self.samples[k].copy_(buf.sample[k])
        self.seen[k] = True
        return self.samples


class ClassifierRole(RoleState):
    lr_role = "classifier"
    name = "classifier"

    def __init__(self, config: TrainConfig, spec: ModelSpec, device: torch.device = CPU,
                 discriminator: torch.nn.Module | None = None):
        """``discriminator``: D's model, whose trunk C shares with ``--shared-trunk`` (C then lives
        in D's process). C's steps train its head and the shared trunk, as MGAN's summed D and C
        loss does; D's steps train the trunk too. Each optimiser keeps its own moments."""
        self.config, self.device = config, device
        self.net = make_model(config, "classifier", spec, discriminator=discriminator).to(device)
        trunk = self.net.trunk_parameters() if config.shared_trunk else []
        self.opt = make_optimizer(config, "classifier", list(self.net.parameters()) + trunk)

    def serve_slot(self, buf: SlotBuffer, k: int, round_index: int, samples: torch.Tensor | None = None) -> float:
        """Lines 33–37 for slot k: update head k on the other slots ("real") against slot k
        ("fake"), then score slot k with the updated C and save the error. Returns C's loss.
        ``samples``: the round's batches as :meth:`take_round` copied them (else read from ``buf``)."""
        return self.serve_slots(buf, [(k, round_index)], samples=samples)

    def take_round(self, buf: SlotBuffer, round_index: int) -> torch.Tensor:
        """A private copy of every slot's batch of round ``round_index`` (the parallel engine's C,
        once all K are in): C's K steps read only this copy, so generator k may write its next batch
        as soon as C has served slot k, while C serves the others."""
        _check_round(buf, round_index)
        with self.copying():
            return as_float(buf.sample, self.device, copy=True)

    def serve_all(self, buf: SlotBuffer, round_index: int) -> float:
        """Engine "batched": :meth:`serve_slots` on all K slots of the round."""
        return self.serve_slots(buf, [(k, round_index) for k in range(buf.num_slots)])

    def _negatives_logits(self, samples: torch.Tensor, jobs: list[tuple[int, int]], seen: torch.Tensor):
        """One forward pass over the slots being served (all their rows) and, of the other seen
        slots, only the rows some head's negatives draw (head k's from the stream of k and its
        job's round). Returns (the logits of those rows [R, H]; head k → the positions in them of
        slot k's rows and of its negatives). A fixed number of tensor operations whatever K."""
        K, m = samples.shape[0], samples.shape[1]
        seen_list = seen.nonzero().flatten().tolist()
        drawn = {k: negative_rows(self.config.seed, k, n, [j for j in seen_list if j != k], m,
                                  self.config.classifier_negatives) for k, n in jobs}
        served = torch.tensor([k for k, _ in jobs]).reshape(-1, 1) * m + torch.arange(m)  # [g, m] flat rows
        rows = torch.cat([served.flatten(), *drawn.values()]).unique()  # sorted
        with self.copying():
            picked = samples.reshape(K * m, *samples.shape[2:]).index_select(0, rows.to(samples.device)).to(self.device)
        positions = {k: (torch.searchsorted(rows, served[i]).to(self.device),
                         torch.searchsorted(rows, drawn[k]).to(self.device)) for i, (k, _) in enumerate(jobs)}
        return self.in_precision(self.net, picked), positions

    def serve_slots(self, buf: SlotBuffer, jobs: list[tuple[int, int]], cache: SampleCache | None = None,
                    lr_scale: float = 1.0, samples: torch.Tensor | None = None) -> float:
        """Several slots at once (engine "batched": all K; engine async: the slots waiting): one
        step on the sum of their heads' losses from one forward pass, then every slot's error from
        one more (Algorithm 1: one step per head, each followed by scoring its slot). Returns the
        mean head loss. ``samples``: every slot's batch of the jobs' round, already copied out
        (:meth:`take_round`)."""
        K, m = buf.num_slots, self.config.batch_size
        slots = [k for k, _ in jobs]
        if samples is not None:
            seen = torch.ones(K, dtype=torch.bool)
        elif cache is None:  # the lock-step engines: the other slots hold this round too
            n = jobs[0][1]
            _check_round(buf, n, jobs)
            samples, seen = as_float(buf.sample), torch.ones(K, dtype=torch.bool)
        else:
            with self.copying():
                for k, n in jobs:
                    samples = cache.take(buf, k, n)
            seen = cache.seen.clone()
        self.set_round(min(n for _, n in jobs), lr_scale)
        kind = self.config.classifier
        if self.config.classifier_negatives:
            logits, negatives = self._negatives_logits(samples, jobs, seen)
        else:  # Algorithm 1: every sample of the round through C
            flat = samples.reshape(K * m, *samples.shape[2:]).to(self.device)
            logits = self.in_precision(self.net, flat).reshape(K, m, -1)
            negatives = None
        losses = classifier_step_terms(kind, logits, slots, seen, negatives)
        if losses:
            loss = torch.stack(losses).sum()
            check_finite(self.name, jobs[0][1], "its loss", loss.detach())
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.step()

        with self.copying():
            x = samples[slots].to(self.device, copy=True).requires_grad_(True)
        out = self.in_precision(self.net, x.reshape(len(slots) * m, *x.shape[2:])).reshape(len(slots), m, -1)
        per_sample = torch.stack([classifier_term(kind, out[i], k, K) for i, k in enumerate(slots)])  # [g, m]
        terms = per_sample.mean(dim=1)  # each slot's C term of J^{G_k}, without β
        grad = input_gradient(terms.sum(), x)
        check_finite(self.name, jobs[0][1], "its gradient for the slots", grad)
        with self.copying():
            for i, (k, n) in enumerate(jobs):
                buf.c_grad[k].copy_(grad[i])
                buf.c_score[k].copy_(per_sample[i].detach())
                buf.c_term[k] = terms[i].item()
                buf.c_round[k] = n
        return float(torch.stack(losses).detach().mean()) if losses else 0.0

