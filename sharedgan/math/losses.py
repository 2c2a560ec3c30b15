"""The PGAN objectives (docs/math.md), written once for every engine.

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


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor, real_target: float = 1.0,
                       kind: str = "bce") -> torch.Tensor:
    """−J^D = −E_data[log D(x)] − E_fake[log(1 − D(x))], computed stably as softplus terms.

    ``kind="hinge"`` (``--generator-loss hinge``; Lim & Ye 2017, SNGAN): E_data[max(0, 1 − d(x))]
    + E_fake[max(0, 1 + d(x))], the margin loss whose generator counterpart is −E[d(x)].

    −log σ(d) = softplus(−d) and −log(1 − σ(d)) = softplus(d). With one-sided label smoothing
    (Improved GAN §3.4) the real target is α = ``real_target`` < 1: the real term becomes the
    cross-entropy −α log D(x) − (1 − α) log(1 − D(x)); fake targets stay 0.
    """
    if kind == "hinge":
        return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
    if real_target == 1.0:
        real = F.softplus(-d_real)
    else:
        real = real_target * F.softplus(-d_real) + (1.0 - real_target) * F.softplus(d_real)
    return real.mean() + F.softplus(d_fake).mean()


def generator_d_term(d_fake: torch.Tensor, threshold: float, kind: str = "pgan") -> torch.Tensor:
    """D's term of J^{G_k} (``--generator-loss``):

    * ``pgan``: E[1 − d(x)], truncated where D(x) > t. d is clamped at logit(t) before the mean,
      so a sample that already fools D beyond t adds the constant 1 − logit(t) to the value and
      nothing to the gradient (the paper's "truncate J^G if D > t": without it 1 − d is
      unbounded below and its gradient explodes);
    * ``ns``: the non-saturating −E[log D(x)] = E[softplus(−d)];
    * ``minimax``: the original E[log(1 − D(x))] = −E[softplus(d)] (saturates when D wins);
    * ``hinge``: −E[d(x)], with D's hinge loss. PGAN's term is 1 − d, the same gradient; the
      truncation at logit(t) is left out: under the hinge loss D stops pushing a fake's logit once
      it is below −1, so d(x) stays near the margin and, unlike 1 − d against a cross-entropy D,
      its gradient does not explode (SNGAN and BigGAN use it so).
    """
    if kind == "hinge":
        return -d_fake.mean()
    if kind == "ns":
        return F.softplus(-d_fake).mean()
    if kind == "minimax":
        return -F.softplus(d_fake).mean()
    return (1.0 - d_fake.clamp(max=threshold_logit(threshold))).mean()


CLASSIFIERS = ("ovr", "softmax", "one-vs-all", "pairwise")


def classifier_outputs(kind: str, k: int) -> int:
    """H, the number of logits the classifier model returns: one per pair for ``pairwise``, else K."""
    return k * (k - 1) // 2 if kind == "pairwise" else k


def pair_index(i: int, j: int, k: int) -> int:
    """The column of pair (i, j), i < j, in the pairwise classifier's logits: pairs in the order
    (0,1), (0,2), …, (0,K−1), (1,2), … (torch.triu_indices order)."""
    if not 0 <= i < j < k:
        raise ValueError(f"a pair needs 0 ≤ i < j < K, got ({i}, {j}) with K = {k}")
    return i * (2 * k - i - 1) // 2 + (j - i - 1)


def _pairs_of(g: int, k: int) -> tuple[list[int], list[int]]:
    """Generator g's pairs: the columns where g is first (C_gj says "g") and where it is second."""
    first = [pair_index(g, j, k) for j in range(g + 1, k)]
    second = [pair_index(i, g, k) for i in range(g)]
    return first, second


def classifier_term(kind: str, logits: torch.Tensor, g: int, k: int) -> torch.Tensor:
    """Per sample, the term of generator ``g`` in C's objective for samples x ~ G_g (logits [m, H]):
    what generator g minimises (without β), and, for every variant but ``ovr``, also C's loss on
    G_g's samples. Returns [m]."""
    if kind == "ovr":
        return F.softplus(logits[:, g])  # −log(1 − C_g), C_g = P(G_-g)
    if kind == "softmax":
        return torch.logsumexp(logits, dim=1) - logits[:, g]  # −log softmax(c)_g
    if kind == "one-vs-all":
        others = [j for j in range(k) if j != g]
        return F.softplus(-logits[:, g]) + F.softplus(logits[:, others]).sum(dim=1) / (k - 1)
    if kind == "pairwise":
        first, second = _pairs_of(g, k)
        return F.softplus(-logits[:, first]).sum(dim=1) + F.softplus(logits[:, second]).sum(dim=1)
    raise ValueError(f"unknown classifier {kind!r}; expected one of {', '.join(CLASSIFIERS)}")


def generator_c_term(c_own: torch.Tensor) -> torch.Tensor:
    """``ovr``: C's term of J^{G_k} without β, −E[log(1 − C_k(x))] = E[softplus(c_k(x))] for
    c_own = c_k(x) [m]. Minimising it drives C_k(x) → 0: the generator cooperates with C to be
    told apart from the others (slip 2 in the module doc). The batch mean of
    :func:`classifier_term`, which holds every variant.

    J^{G_k} = generator_d_term + β_k · generator_c_term.
    """
    return F.softplus(c_own).mean()


def classifier_loss(c_other: torch.Tensor, c_own: torch.Tensor) -> torch.Tensor:
    """``ovr`` head k's share of −J^C: samples of G_-k "real" (C_k → 1), samples of G_k "fake".

    −( E_{x~G_-k}[log C_k(x)] + E_{x~G_k}[log(1 − C_k(x))] ), each expectation a batch mean.
    """
    return F.softplus(-c_other).mean() + F.softplus(c_own).mean()


def classifier_step_terms(kind: str, logits, slots: list[int], seen: torch.Tensor,
                          negatives: dict[int, dict[int, torch.Tensor]] | None = None) -> list[torch.Tensor]:
    """C's loss for one step on ``slots`` (Algorithm 1: one step per slot k, k in turn; the batched
    and async engines: several in one step), from logits [K, m, H] of every slot's batch (slot j's
    batch comes from G_j) and ``seen`` [K] (which slots hold a batch; async C may not have them all).
    Returns the terms whose sum is the step's loss, one per head, pair or class touched:

    * ``ovr``, ``one-vs-all``: head k of each k in ``slots``, on slot k against the seen others;
    * ``pairwise``: every pair (i, j) with i or j in ``slots`` and both seen, each pair once;
    * ``softmax``: one term, the K-way cross-entropy averaged over every seen slot's batch (MGAN's
      π_k = 1/K; the softmax ties all heads together, so a step on any slot trains on every batch).

    ``negatives`` (``ovr`` and ``one-vs-all`` only, :mod:`sharedgan.math.negatives`): head k →
    (the positions of slot k's rows, those of the rows head k contrasts them with) in ``logits``,
    which is then [R, H]: only the R rows that were run through C. None: every row of every other slot.

    No term for a head with no other slot to contrast it with (the async C's very first slot).
    """
    num = len(seen)
    if int(seen.sum()) < 2:
        return []
    seen_list = seen.nonzero().flatten().tolist()
    terms = []
    if kind in ("ovr", "one-vs-all"):
        sign = 1.0 if kind == "ovr" else -1.0  # ovr's C_k is P(G_-k), one-vs-all's P(G_k)
        for k in slots:
            if negatives is None:
                own = sign * logits[:, :, k]
                terms.append(classifier_loss(own[[j for j in seen_list if j != k]], own[k]))
            else:
                mine, contrast = negatives[k]
                terms.append(classifier_loss(sign * logits[contrast, k], sign * logits[mine, k]))
    elif negatives is not None:
        raise ValueError(f"classifier negatives work with the per-head objectives ovr and one-vs-all, not {kind!r}")
    elif kind == "softmax":  # MGAN eq. 2's (1/K) Σ_k: the mean over the batches, one term
        terms.append(torch.stack([F.cross_entropy(logits[j], torch.full((logits.shape[1],), j, device=logits.device))
                                  for j in seen_list]).mean())
    elif kind == "pairwise":
        for i in seen_list:
            for j in seen_list:
                if i < j and (i in slots or j in slots):
                    col = pair_index(i, j, num)
                    terms.append(F.softplus(-logits[i, :, col]).mean() + F.softplus(logits[j, :, col]).mean())
    else:
        raise ValueError(f"unknown classifier {kind!r}; expected one of {', '.join(CLASSIFIERS)}")
    return terms


def feature_matching(real_mean: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """‖E_data f(x) − E_G f(x)‖²₂ (Improved GAN §3.1): ``real_mean`` [A] the mean of D's features
    f over a real batch (a constant), ``fake_features`` [m, A] f over the generator's batch."""
    return (real_mean - fake_features.mean(0)).pow(2).sum()


def r1_penalty(d_real: torch.Tensor, real: torch.Tensor, gamma: float) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): γ/2 · E_data ‖∇ₓ d(x)‖², ``real`` the batch that gave the logits
    ``d_real`` (it must require grad). The gradient of Σ d over the batch: each sample's own when
    the samples do not interact (D with batch norm couples them; spectral norm drops it). Kept in
    the graph, so that D descends it."""
    (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
    return 0.5 * gamma * grad.pow(2).flatten(1).sum(1).mean()


def ema_decay(decay: float, steps: int) -> float:
    """The decay of the weights' moving average after ``steps`` earlier updates: min(decay,
    (1 + t)/(10 + t)), so that early on the average is not held by the initial weights (the
    warm-up of TensorFlow's ExponentialMovingAverage)."""
    return min(decay, (1.0 + steps) / (10.0 + steps))


def input_gradient(term: torch.Tensor, x: torch.Tensor, retain_graph: bool = False) -> torch.Tensor:
    """∂term/∂x: the "error" D and C write into a slot for the generator to back-propagate."""
    (grad,) = torch.autograd.grad(term, x, retain_graph=retain_graph)
    return grad

