"""The PGAN objectives (DESIGN.md, "The math"), written once for every engine.

Notation: D(x) = σ(d(x)) with d the discriminator logit; C_k(x) = σ(c_k(x)) is the classifier's
probability that x comes from the *other* generators G_{-k} (one-vs-rest, one logit head per
generator). All functions take logits and return batch means, so any gradient taken from them
carries the 1/m of the mean.

Two slips in the paper (PGAN eq. 2 and §3.5) are *not* copied here:

1. Eq. 2 prints the generator's D term as 1 − log(1/D − 1), which is 1 + d. The paper's own proof
   (Proposition 1) uses 1 + log((1 − D)/D) = 1 − d: only that one decreases as the generator fools
   D, and only that one is "not bounded below" as the paper says. We implement 1 − d, truncated
   where D(x) > t (see :func:`generator_d_term`).
2. §3.5 says the C term minimises JSD(P_{g_k} ‖ P_{g_-k}). The generator in fact works *with* C:
   lowering −log(1 − C_k(x)) pushes C_k(x) → 0, i.e. makes its samples look unlike the other
   generators', which *maximises* that divergence. That is what separates the generators.

Because D is trained against the whole mixture, the D term matches a reverse KL to the data only
when K = 1; with K > 1 it is the gradient signal the paper uses, not an exact divergence.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def threshold_logit(threshold: float) -> float:
    """logit(t): the truncation point of the generator's D term in logit space."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold}")
    return math.log(threshold / (1.0 - threshold))


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor, real_target: float = 1.0) -> torch.Tensor:
    """−J^D = −E_data[log D(x)] − E_fake[log(1 − D(x))], computed stably as softplus terms.

    −log σ(d) = softplus(−d) and −log(1 − σ(d)) = softplus(d). With one-sided label smoothing
    (Improved GAN §3.4) the real target is α = ``real_target`` < 1: the real term becomes the
    cross-entropy −α log D(x) − (1 − α) log(1 − D(x)); fake targets stay 0.
    """
    if real_target == 1.0:
        real = F.softplus(-d_real)
    else:
        real = real_target * F.softplus(-d_real) + (1.0 - real_target) * F.softplus(d_real)
    return real.mean() + F.softplus(d_fake).mean()


def classifier_loss(c_other: torch.Tensor, c_own: torch.Tensor) -> torch.Tensor:
    """Head k's share of −J^C: samples of G_{-k} are "real" (C_k → 1), samples of G_k "fake".

    −( E_{x~G_-k}[log C_k(x)] + E_{x~G_k}[log(1 − C_k(x))] ), each expectation a batch mean.
    """
    return F.softplus(-c_other).mean() + F.softplus(c_own).mean()


def generator_d_term(d_fake: torch.Tensor, threshold: float, kind: str = "pgan") -> torch.Tensor:
    """D's term of J^{G_k} (``--generator-loss``):

    * ``pgan``: E[1 − d(x)], truncated where D(x) > t. d is clamped at logit(t) before the mean,
      so a sample that already fools D beyond t adds the constant 1 − logit(t) to the value and
      nothing to the gradient (the paper's "truncate J^G if D > t": without it 1 − d is
      unbounded below and its gradient explodes);
    * ``ns``: the non-saturating −E[log D(x)] = E[softplus(−d)];
    * ``minimax``: the original E[log(1 − D(x))] = −E[softplus(d)] (saturates when D wins).
    """
    if kind == "ns":
        return F.softplus(-d_fake).mean()
    if kind == "minimax":
        return -F.softplus(d_fake).mean()
    return (1.0 - d_fake.clamp(max=threshold_logit(threshold))).mean()


def generator_c_term(c_own: torch.Tensor) -> torch.Tensor:
    """C's term of J^{G_k} without β: −E[log(1 − C_k(x))] = E[softplus(c_k(x))].

    J^{G_k} = generator_d_term + β_k · generator_c_term. Minimising it drives C_k(x) → 0: the
    generator cooperates with C to be told apart from the others (slip 2 in the module doc).
    """
    return F.softplus(c_own).mean()


def input_gradient(term: torch.Tensor, x: torch.Tensor, retain_graph: bool = False) -> torch.Tensor:
    """∂term/∂x: the "error" D and C write into a slot for the generator to back-propagate."""
    (grad,) = torch.autograd.grad(term, x, retain_graph=retain_graph)
    return grad
