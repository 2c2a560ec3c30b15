"""What every role is: a model, its optimiser and its state; plain PyTorch on a slot buffer."""

from __future__ import annotations

import math
import time
from contextlib import contextmanager

import torch

from sharedgan.config import TrainConfig
from sharedgan.errors import Diverged

CPU = torch.device("cpu")


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
    device: torch.device

    config: TrainConfig
    lr_role: str
    name: str
    copy_seconds = 0.0  # time spent copying into or out of slots (the "copy" of the time breakdown)

    def in_precision(self, fn, *args):
        """``fn(*args)`` (the role's model, or one of its methods) in ``--precision``: bf16 runs it
        under ``torch.autocast`` (matrix products and convolutions in bfloat16) and returns its
        outputs as float32, so losses, the gradients written to the slots, parameters and optimiser
        states stay float32; fp32 runs it as it is."""
        if self.config.precision == "fp32":
            return fn(*args)
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            out = fn(*args)
        return type(out)(o.float() for o in out) if isinstance(out, (tuple, list)) else out.float()

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

