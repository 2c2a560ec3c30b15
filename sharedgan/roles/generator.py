"""Generator k: writes a batch into slot k, then back-propagates the errors D and C wrote there."""

from __future__ import annotations

import copy
import functools

import torch
from torch.optim.swa_utils import AveragedModel

from sharedgan.config import TrainConfig
from sharedgan.errors import FactoryError
from sharedgan.math.beta_schedule import BetaSchedule, loss_gaps
from sharedgan.math.losses import ema_decay
from sharedgan.math.seeding import stream
from sharedgan.models.spec import ModelSpec
from sharedgan.roles.base import CPU, RoleState, check_finite
from sharedgan.roles.build import make_model, make_optimizer
from sharedgan.runtime import faults
from sharedgan.runtime.buffer import SlotBuffer, as_float


def prior_noise(n: int, noise_dim: int, prior: str, gen: torch.Generator) -> torch.Tensor:
    """z ~ the configured prior: standard normal, or uniform on [−1, 1]."""
    if prior == "uniform":
        return torch.rand((n, noise_dim), generator=gen) * 2 - 1
    return torch.randn((n, noise_dim), generator=gen)


def make_body(config: TrainConfig, spec: ModelSpec) -> torch.nn.Module:
    """``--share-generator-body``: the layers every generator shares, from a stream of their own."""
    net = make_model(config, "generator", spec, stream_name="generator-body")
    if (not isinstance(getattr(net, "body", None), torch.nn.Module)
            or not isinstance(getattr(net, "first", None), torch.nn.Module)):
        raise FactoryError("--share-generator-body needs a generator with .first and .body modules, forward = "
                           "body(first(z)) (the built-in standard generators; not sdeconv or --virtual-batch-norm)")
    return net.body


def tied_copy(body: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``body`` whose parameters *are* ``body``'s and whose buffers (batch-norm running
    statistics) are its own: each generator normalises its evaluation samples with statistics of
    its own batches, and a sample never depends on the rest of its batch."""
    twin = copy.deepcopy(body)
    for name, module in twin.named_modules():
        source = body.get_submodule(name)
        for pname, param in module._parameters.items():
            if param is not None:
                module._parameters[pname] = source._parameters[pname]
    return twin


def take_body_gradient(body: torch.nn.Module, grads: torch.Tensor, k: int) -> None:
    """--share-generator-body: move generator k's body gradient (what its backward left in .grad)
    into row k of ``grads``, leaving the body's .grad empty for the next generator."""
    params = list(body.parameters())
    with torch.no_grad():
        grads[k].copy_(torch.cat([p.grad.reshape(-1) for p in params]).to(grads.device))
    for p in params:
        p.grad = None


class SharedBody(RoleState):
    """``--share-generator-body`` (MGAN §3): the body every generator runs after its own first
    layer. Each round, every generator back-propagates its own J^{G_k} through the body; the body
    then takes one step on the sum of those K gradients, added in the order k = 0, 1, …, K − 1.
    That is the gradient of Σ_k J^{G_k}, MGAN's objective for the generators, and a fixed order
    keeps float addition, and so the engines, bit-for-bit equal. Generator 0 owns the step (and
    saves the body's optimiser); in the parallel engine the body's parameters live in the buffer's
    parameter region, which every generator process reads, and the K gradients in a [K, P] region
    beside it. Batch-norm running statistics stay each generator's own (:func:`tied_copy`)."""

    lr_role = "generator"
    name = "generator-body"

    def __init__(self, config: TrainConfig, body: torch.nn.Module):
        self.config, self.net = config, body
        self.opt = make_optimizer(config, "generator", body.parameters())

    def apply(self, grads: torch.Tensor, round_index: int) -> None:
        """One step on the sum of the K gradients in ``grads``, added in order."""
        total = grads[0].clone()
        for j in range(1, grads.shape[0]):
            total += grads[j]
        check_finite(self.name, round_index, "its gradient", total)
        offset = 0
        for p in self.net.parameters():
            p.grad = total[offset:offset + p.numel()].view_as(p).to(p.device).clone()
            offset += p.numel()
        self.set_round(round_index)
        self.step()
        for p in self.net.parameters():  # the next round's backward must start from nothing
            p.grad = None

    def gradient_size(self) -> int:
        return sum(p.numel() for p in self.net.parameters())


def _ema_average(decay: float, averaged: torch.Tensor, current: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    d = ema_decay(decay, int(steps))
    return d * averaged + (1.0 - d) * current


def average_of(net: torch.nn.Module, decay: float) -> AveragedModel:
    """--ema: the moving average of ``net``'s weights and its buffers (batch-norm statistics), updated
    after every step; its first update copies the weights. ``.module`` is the averaged generator."""
    return AveragedModel(net, avg_fn=functools.partial(_ema_average, decay), use_buffers=True)


def averaged_weights(state: dict) -> dict:
    """A generator checkpoint's weights to sample from: the moving average's when it has one."""
    if "ema" not in state:
        return state["model"]
    return {key[len("module."):]: value for key, value in state["ema"].items() if key.startswith("module.")}


class GeneratorRole(RoleState):
    lr_role = "generator"

    def __init__(self, config: TrainConfig, spec: ModelSpec, k: int, device: torch.device = CPU,
                 body: torch.nn.Module | None = None, newest_gaps: bool = False):
        """``body``: the shared body (``--share-generator-body``); this generator's optimiser then
        steps its first layer only, and generator 0 carries the body's step (:class:`SharedBody`).
        ``newest_gaps``: the loss-gap β reads each generator's newest published loss, whatever its
        round (an engine without lock-step rounds says so); else every loss of the previous round."""
        self.config, self.spec, self.k, self.device = config, spec, k, device
        self.newest_gaps = newest_gaps
        self.name = f"generator-{k}"
        self.net = make_model(config, "generator", spec, k).to(device)
        self.body: SharedBody | None = None
        if body is not None:
            self.net.body = body if k == 0 else tied_copy(body)
            self.body = SharedBody(config, body) if k == 0 else None
        own = self.net.first.parameters() if body is not None else self.net.parameters()
        self.opt = make_optimizer(config, "generator", own)
        self.schedule = BetaSchedule(config.beta_schedule, config.beta0, config.decay, config.beta_tau)
        self._sample: torch.Tensor | None = None  # the batch of this round, with its graph
        self.last_stats = (0.0, 0.0)  # (J^{G_k}, β_k) of the last update, what the others' β reads
        self.ema = average_of(self.net, config.ema) if config.ema else None  # --ema: what evaluation uses

    def noise(self, n: int, purpose: str, round_index: int) -> torch.Tensor:
        gen = stream(self.config.seed, purpose, self.k, round_index)
        return prior_noise(n, self.spec.noise_dim, self.config.noise, gen)

    def write_sample(self, buf: SlotBuffer, round_index: int) -> None:
        """Algorithm 1 lines 7–9: sample z from the prior, generate m samples, put them in slot k."""
        x = self.in_precision(self.net, self.noise(self.config.batch_size, "noise", round_index).to(self.device))
        check_finite(self.name, round_index, "its sample", x.detach())
        with self.copying():
            buf.sample[self.k].copy_(x.detach())
        faults.point("slot-write", self.name, round_index)
        buf.sample_round[self.k] = round_index
        self._sample = x

    def beta(self, buf: SlotBuffer, round_index: int) -> float:
        """β_k for this round; the loss-gap schedules read every generator's previous-round loss."""
        if self.config.k == 1:
            return 0.0
        gap = 0.0
        if self.schedule.kind in ("loss-gap", "combined") and round_index > 0:
            if self.newest_gaps:
                gap = self._latest_gap(buf)
            else:
                parity = (round_index - 1) % 2
                rounds = buf.gen_round[:, parity]
                if not bool((rounds == round_index - 1).all()):
                    raise RuntimeError(f"{self.name}: slot stats hold rounds {rounds.tolist()}, "
                                       f"expected {round_index - 1}")
                gap = loss_gaps(buf.gen_loss[:, parity].tolist())[self.k]
        return self.schedule(round_index, gap)

    def _latest_gap(self, buf: SlotBuffer) -> float:
        """Δ_k from each generator's newest published loss (engine async: every generator is at a
        round of its own); generators that have published none yet are left out."""
        rounds, losses = buf.gen_round.clone(), buf.gen_loss.clone()
        newest = rounds.argmax(dim=1)
        have = [j for j in range(self.config.k) if int(rounds[j, newest[j]]) >= 0]
        if self.k not in have or len(have) < 2:
            return 0.0
        gaps = loss_gaps([float(losses[j, newest[j]]) for j in have])
        return gaps[have.index(self.k)]

    def update(self, buf: SlotBuffer, round_index: int) -> tuple[float, ...]:
        """Lines 11–13: back-propagate D's error plus β_k × C's error (plus γ × the teacher's, HGAN);
        return (J^{G_k}, β_k, D term, C term, teacher term).

        D and C wrote ∂term/∂x of batch means, so ``x.backward(grad)`` is the backward of
        J^{G_k} = D term + β_k · C term + γ · T term itself (the 1/m is already in the gradients).
        """
        k, two_players, gamma = self.k, self.config.k > 1, self.config.teacher_weight
        if (int(buf.d_round[k]) != round_index or (two_players and int(buf.c_round[k]) != round_index)
                or (gamma and int(buf.t_round[k]) != round_index)):
            raise RuntimeError(f"{self.name}: validation of round {round_index} missing "
                               f"(D wrote {int(buf.d_round[k])}, C wrote {int(buf.c_round[k])}"
                               + (f", the teacher {int(buf.t_round[k])})" if gamma else ")"))
        self.set_round(round_index)
        beta = self.beta(buf, round_index)
        with self.copying():  # reading D's and C's (and the teacher's) errors out of the slot
            grad = (as_float(buf.d_grad[k]) + beta * as_float(buf.c_grad[k]) if two_players
                    else as_float(buf.d_grad[k], copy=True))
            if gamma:
                grad = grad + gamma * as_float(buf.t_grad[k])
            grad = grad.to(self.device)
        self.opt.zero_grad(set_to_none=True)
        self._sample.backward(grad)
        self.step()
        if self.ema is not None:
            self.ema.update_parameters(self.net)
        self._sample = None
        d_term = float(buf.d_term[k])
        c_term = float(buf.c_term[k]) if two_players else 0.0
        t_term = float(buf.t_term[k]) if gamma else 0.0
        loss = d_term + beta * c_term + gamma * t_term
        check_finite(self.name, round_index, "its loss J^G", loss)
        self.last_stats = (loss, beta)
        self._publish_stats(buf, round_index)
        return loss, beta, d_term, c_term, t_term

    def _publish_stats(self, buf: SlotBuffer, round_index: int) -> None:
        parity = round_index % 2
        buf.gen_loss[self.k, parity], buf.gen_beta[self.k, parity] = self.last_stats
        buf.gen_round[self.k, parity] = round_index

    def rejoin(self, buf: SlotBuffer, round_index: int) -> None:
        """Begin at ``round_index`` (a start, a resume, or after a peer was respawned): drop a
        half-done round and republish the last stats as those of round − 1, so every β of this
        round reads a complete set (C's per-round barrier orders these writes before any read)."""
        self._sample = None
        if round_index > 0:
            self._publish_stats(buf, round_index - 1)

    def state_dict(self, round_index: int) -> dict:
        state = {**super().state_dict(round_index), "stats": torch.tensor(self.last_stats, dtype=torch.float64)}
        if self.body is not None:
            state["body"] = self.body.state_dict(round_index)
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.last_stats = tuple(float(v) for v in state["stats"])
        if self.body is not None:
            self.body.load_state_dict(state["body"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])

    @torch.no_grad()
    def write_eval(self, buf: SlotBuffer, round_index: int) -> None:
        """Fresh samples for evaluation, from their own noise stream (never the training batch)."""
        net = self.net if self.ema is None else self.ema.module
        was_training = net.training
        net.eval()
        samples = net(self.noise(self.config.eval_samples, "eval-noise", round_index).to(self.device))
        with self.copying():
            buf.eval_sample[self.k].copy_(samples)
        net.train(was_training)

