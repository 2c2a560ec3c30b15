"""The three roles of Algorithm 1. Each is plain PyTorch on a :class:`~sharedgan.buffer.SlotBuffer`:
it knows nothing of processes or signals, so every engine runs the very same steps."""
from __future__ import annotations

import math
import time
from contextlib import contextmanager

import torch

from ..config import TrainConfig
from ..data import make_dataset
from ..losses import classifier_outputs
from ..models import FactoryError, ModelSpec, build_model, check_output, shared_trunk_head
from ..seeding import derive_seed

CPU = torch.device("cpu")


def dataset_of(config: TrainConfig):
    """The real data: a 2-D mixture drawn fresh, or images mapped from their cache (built once)."""
    if config.images:
        from ..image_data import ImageDataset, load
        return ImageDataset(load(config.dataset, config.data_dir, config.cache_dir, config.verify_md5))
    return make_dataset(config.dataset, config.ring_modes, config.ring_radius, config.grid_side,
                        config.grid_spacing, config.mode_std)


def model_spec(config: TrainConfig, dataset=None) -> ModelSpec:
    dataset = dataset or dataset_of(config)
    return ModelSpec(tuple(dataset.sample_shape), config.noise_dim, config.k, config.hidden, config.width,
                     classifier_outputs=classifier_outputs(config.classifier, config.k), batch_size=config.batch_size,
                     minibatch_features=config.minibatch_features, minibatch_kernel_dim=config.minibatch_kernel_dim,
                     virtual_batch_norm=config.virtual_batch_norm, noise_prior=config.noise, bank=config.bank,
                     stochastic_layers=config.stochastic_layers)


def make_optimizer(config: TrainConfig, role: str, params) -> torch.optim.Optimizer:
    kind, lr = getattr(config, f"optimizer_{role}"), getattr(config, f"lr_{role}")
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(config.adam_beta1, config.adam_beta2))
    return torch.optim.SGD(params, lr=lr)


def make_model(config: TrainConfig, role: str, spec: ModelSpec, index: int = 0,
               discriminator: torch.nn.Module | None = None, stream_name: str | None = None) -> torch.nn.Module:
    """The model of one role, initialised on the CPU from its own stream (so every device starts
    from the same weights) and checked for output shape; the role moves it to its device. With
    ``--shared-trunk`` the classifier is a head on ``discriminator``'s trunk (built if not given)."""
    seed = derive_seed(config.seed, "init", stream_name or role, index)
    probe_in = torch.zeros(2, spec.noise_dim) if role == "generator" else torch.zeros(2, *spec.sample_shape)
    if role == "classifier" and config.shared_trunk:
        discriminator = discriminator if discriminator is not None else make_model(config, "discriminator", spec)
        at = next(discriminator.parameters()).device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = shared_trunk_head(discriminator, spec).to(at)
        probe_in = probe_in.to(at)
    else:
        net = build_model(getattr(config, f"{role}_factory"), spec, seed)
    if role == "discriminator" and config.feature_matching != "off" and not callable(getattr(net, "forward_features", None)):
        raise FactoryError(f"--feature-matching needs a discriminator with forward_features(x) -> (logits, features); "
                           f"{config.discriminator_factory} has none (the built-in models do)")
    probed = [net] + ([discriminator] if role == "classifier" and config.shared_trunk else [])
    was_training = [m.training for m in probed]
    for m in probed:
        m.eval()  # so a probe never touches batch-norm statistics (D's too, under a shared head)
    with torch.no_grad():
        check_output(role, net(probe_in), 2, spec)
    for m, mode in zip(probed, was_training):
        m.train(mode)
    return net


DIVERGENCE_KINDS = ("sample", "loss", "gradient", "parameter")  # what can turn non-finite, by code


class Diverged(RuntimeError):
    """NaN or Inf where a finite number must be; names the role, the round and what."""

    def __init__(self, role: str, round_index: int, what: str):
        self.role, self.round, self.what = role, round_index, what
        first_word = what.removeprefix("its ").split()[0]
        self.code = DIVERGENCE_KINDS.index(first_word) if first_word in DIVERGENCE_KINDS else 0
        super().__init__(f"{role} diverged at round {round_index}: {what} is not finite (NaN or Inf)")


def check_finite(role: str, round_index: int, what: str, value) -> None:
    """Raise :class:`Diverged` unless ``value`` (a float or a tensor) is finite everywhere."""
    ok = math.isfinite(value) if isinstance(value, float) else bool(torch.isfinite(value).all())
    if not ok:
        raise Diverged(role, round_index, what)


class RoleState:
    """What every role saves: model, optimiser, the round, the process's global torch RNG (the
    engine's own streams are counter-based, see seeding; a user model may still use the global one)."""

    net: torch.nn.Module
    opt: torch.optim.Optimizer

    config: TrainConfig
    lr_role: str
    name: str
    copy_seconds = 0.0  # time spent copying into or out of slots (the "copy" of the time breakdown)

    @contextmanager
    def copying(self):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.copy_seconds += time.perf_counter() - start

    def set_round(self, round_index: int, scale: float = 1.0) -> None:
        """Apply the round's learning rate (``--lr-decay``), times ``scale`` (the async engine's
        steps on several slots, ``--serve-lr-scaling``); cheap and idempotent."""
        lr = getattr(self.config, f"lr_{self.lr_role}") * self.config.lr_factor(round_index) * scale
        for group in self.opt.param_groups:
            group["lr"] = lr

    # Historical averaging (Improved GAN §3.3, --historical-averaging λ): every step also descends
    # λ‖θ − θ̄‖², θ̄ the mean of the parameters over this role's steps so far (θ_0 included).
    _history: tuple[int, list[torch.Tensor]] | None = None  # (t, θ̄)

    def step(self) -> None:
        """The optimiser step, after the role's loss was back-propagated."""
        weight = self.config.historical_averaging
        if weight <= 0:
            self.opt.step()
            return
        params = self._own_stepped()
        if self._history is None:
            self._history = (1, [p.detach().clone() for p in params])
        t, means = self._history
        with torch.no_grad():
            for p, mean in zip(params, means):
                penalty_grad = 2 * weight * (p - mean)  # ∂/∂θ of λ‖θ − θ̄‖²
                p.grad = penalty_grad if p.grad is None else p.grad.add_(penalty_grad)
        self.opt.step()
        with torch.no_grad():
            for p, mean in zip(params, means):
                mean.add_((p - mean) / (t + 1))  # the running mean over t + 1 parameter values
        self._history = (t + 1, means)

    def _own_stepped(self) -> list[torch.Tensor]:
        """The parameters this role's optimiser steps that are its own model's: not a shared body
        (stepped by generator 0) nor D's trunk (which C also steps, with --shared-trunk), so a
        shared parameter is averaged once."""
        own = {id(p) for p in self.net.parameters()}
        return [p for group in self.opt.param_groups for p in group["params"] if id(p) in own]

    def state_dict(self, round_index: int) -> dict:
        """The state after ``round_index``; refuses to hand out non-finite parameters, so a
        diverged role can never overwrite the last good checkpoint."""
        for pname, param in self.net.named_parameters():
            check_finite(self.name, round_index, f"parameter {pname}", param.detach())
        state = {"round": round_index, "model": self.net.state_dict(), "optimizer": self.opt.state_dict(),
                 "torch_rng": torch.get_rng_state()}
        if self._history is not None:
            state["history_count"] = torch.tensor(self._history[0])
            state["history_mean"] = list(self._history[1])
        return state

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        if "history_count" in state:
            device = self.opt.param_groups[0]["params"][0].device
            self._history = (int(state["history_count"]), [m.to(device) for m in state["history_mean"]])

    def rejoin(self, buf, round_index: int) -> None:
        """Start (again) at ``round_index``: forget any half-done round. See engines.parallel."""
