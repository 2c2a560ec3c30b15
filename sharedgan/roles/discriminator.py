"""The discriminator D: scores each slot, writes the generator's error, then updates on it."""

from __future__ import annotations

import torch

from sharedgan.config import TrainConfig
from sharedgan.data.mixtures import GaussianMixture
from sharedgan.math.augment import diff_augment, policy
from sharedgan.math.losses import discriminator_loss, feature_matching, generator_d_term, input_gradient, r1_penalty
from sharedgan.math.seeding import stream
from sharedgan.models.spec import ModelSpec
from sharedgan.roles.base import CPU, RoleState, check_finite
from sharedgan.roles.build import make_model, make_optimizer
from sharedgan.runtime import faults
from sharedgan.runtime.buffer import SlotBuffer, as_float


class DiscriminatorRole(RoleState):
    lr_role = "discriminator"
    name = "discriminator"
    region = "d"  # the slot's validation region it writes: d_score, d_grad, d_term, d_round
    streams = ""  # prefix of its random streams' purposes (another critic built from this one draws its own)

    def __init__(self, config: TrainConfig, spec: ModelSpec, dataset: GaussianMixture, device: torch.device = CPU,
                 stream_name: str | None = None):
        self.config, self.dataset, self.device = config, dataset, device
        self.net = make_model(config, "discriminator", spec, stream_name=stream_name).to(device)
        self.opt = make_optimizer(config, "discriminator", self.net.parameters())
        self._fake_logits: torch.Tensor | None = None
        self.partner = None  # --shared-trunk: the classifier role on this D's trunk, run in D's process
        self.augmentations = policy(config.augment)

    def validate(self, buf: SlotBuffer, k: int, round_index: int) -> None:
        """Lines 23–25: score slot k with D *before* this slot's update and save the error: the
        gradient of the D term of J^{G_k} with respect to every sample of the slot."""
        self.validate_slots(buf, [(k, round_index)])

    def update(self, k: int, round_index: int) -> float:
        """Lines 21–22 and 26: m fresh real samples against slot k, one step on −J^D."""
        return self.update_slots([(k, round_index)])

    def _step(self, round_index: int, jobs: list[tuple[int, int]]) -> float:
        """One step on −J^D: the real batches Algorithm 1 draws for ``jobs`` against the fake
        logits kept from validation (plus R1 on the real batches in its rounds)."""
        config = self.config
        real = torch.cat([self._real(k, n) for k, n in jobs]).to(self.device)
        # due when a job's round is (the async engine's steps may mix rounds: any of them counts)
        r1_due = config.r1 > 0 and any(n % config.r1_every == 0 for _, n in jobs)
        real.requires_grad_(r1_due)
        d_real = self.in_precision(self.net, self._augmented(real, jobs, "augment-real")).reshape(-1)
        loss = discriminator_loss(d_real, self._fake_logits.reshape(-1), config.label_smoothing,
                                  "hinge" if config.generator_loss == "hinge" else "bce")
        if r1_due:  # lazy: every r1_every rounds, weighted by the interval (StyleGAN2)
            loss = loss + config.r1_every * r1_penalty(d_real, real, config.r1)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        check_finite(self.name, round_index, "its loss", loss.detach())
        self.step()
        self._fake_logits = None
        return loss.item()

    def _augmented(self, x: torch.Tensor, jobs: list[tuple[int, int]], purpose: str) -> torch.Tensor:
        """--augment: each job's batch of ``x`` (jobs' batches one after the other along dim 0)
        through DiffAugment from the job's own stream, so every engine augments alike."""
        if not self.augmentations:
            return x
        m = x.shape[0] // len(jobs)
        return torch.cat([diff_augment(x[i * m:(i + 1) * m], self.augmentations,
                                       stream(self.config.seed, self.streams + purpose, k, n))
                          for i, (k, n) in enumerate(jobs)])

    # ---- the steps on one slot (above), or on several in one step: engine "batched" (all K),
    # engine async (the slots waiting). Several are not Algorithm 1, see engines/__init__: one
    # forward pass scores them with one D, one step updates D on all of them (Algorithm 1: slot k
    # is scored by the D after k updates, K steps).
    def validate_slots(self, buf: SlotBuffer, jobs: list[tuple[int, int]]) -> None:
        """Score the slots of ``jobs`` ((slot, round) pairs) in one forward pass and save each
        slot's error. The logits keep their graph: :meth:`update_slots` reuses this pass for D's
        own fake term."""
        for k, n in jobs:
            if int(buf.sample_round[k]) != n:
                raise RuntimeError(f"discriminator: slot {k} holds round {int(buf.sample_round[k])}, expected {n}")
        slots = [k for k, _ in jobs]
        # A private copy: every field is a view of one flat storage with one autograd version
        # counter, so writing d_grad below would otherwise invalidate the graph kept for the update.
        with self.copying():
            x = as_float(buf.sample[slots], self.device, copy=True).requires_grad_(True)
        logits, terms = self._generator_terms(x, jobs)
        # slot i's samples appear in term i only, so the gradient of the sum is every slot's own error
        grad = input_gradient(torch.stack(terms).sum(), x, retain_graph=True)
        check_finite(self.name, jobs[0][1],
                     f"its gradient for slot{'s' * (len(slots) > 1)} {', '.join(map(str, slots))}", grad)
        region = {part: getattr(buf, f"{self.region}_{part}") for part in ("grad", "score", "term", "round")}
        with self.copying():
            for i, (k, _) in enumerate(jobs):
                region["grad"][k].copy_(grad[i])
                region["score"][k].copy_(logits[i].detach())
                region["term"][k] = terms[i].item()
        faults.point("validation-write", self.name, jobs[0][1])
        for k, n in jobs:
            region["round"][k] = n
        self._fake_logits = logits

    def update_slots(self, jobs: list[tuple[int, int]], lr_scale: float = 1.0) -> float:
        """One step on −J^D over the validated slots and the real batches Algorithm 1 would draw
        for them (the learning rate of the earliest round, times ``lr_scale``)."""
        self.set_round(min(n for _, n in jobs), lr_scale)
        return self._step(jobs[0][1], jobs)

    def _real(self, k: int, n: int) -> torch.Tensor:
        """The m real samples Algorithm 1 draws against slot k in round n (their own stream)."""
        return self.dataset.sample(self.config.batch_size, stream(self.config.seed, "real", k, n))

    def _generator_terms(self, x: torch.Tensor, jobs: list[tuple[int, int]]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """D's logits [g, m] for the slots' samples x [g, m, ...], and each slot's D term of J^{G_k}:
        ``--generator-loss``'s term, replaced by or plus feature matching (Improved GAN §3.1),
        ‖E_data f(x) − E_{G_k} f(x)‖², f D's last hidden layer and E_data over the slot's real batch."""
        g, m, fm = len(jobs), self.config.batch_size, self.config.feature_matching
        flat = self._augmented(x.reshape(g * m, *x.shape[2:]), jobs, "augment-fake")
        if fm == "off":
            logits = self.in_precision(self.net, flat).reshape(g, m)
        else:
            logits, features = self.in_precision(self.net.forward_features, flat)
            logits, features = logits.reshape(g, m), features.reshape(g, m, -1)
            with torch.no_grad():
                real = self._augmented(torch.cat([self._real(k, n) for k, n in jobs]).to(self.device), jobs,
                                       "augment-real")
                real_mean = self.in_precision(self.net.forward_features, real)[1].reshape(g, m, -1).mean(1)
            matching = [feature_matching(real_mean[i], features[i]) for i in range(g)]
        terms = []
        for i in range(g):
            term = (generator_d_term(logits[i], self.config.threshold, self.config.generator_loss)
                    if fm != "replace" else 0.0)
            terms.append(term + matching[i] if fm != "off" else term)
        return logits, terms

    def validate_all(self, buf: SlotBuffer, round_index: int) -> None:
        """Engine "batched": all K slots of the round with the D of the round's start."""
        self.validate_slots(buf, [(k, round_index) for k in range(buf.num_slots)])

    def update_all(self, round_index: int) -> float:
        return self.update_slots([(k, round_index) for k in range(self._fake_logits.shape[0])])

    def rejoin(self, buf: SlotBuffer, round_index: int) -> None:
        self._fake_logits = None

