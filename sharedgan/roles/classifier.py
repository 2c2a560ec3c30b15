"""The adjustment component C: one network with K one-vs-rest logit heads.

Head k's logit c_k(x) says "x comes from the other generators G_-k" (PGAN's C_k; MGAN's C_k is
the opposite event).
"""
from __future__ import annotations

import torch

from ..buffer import SlotBuffer
from ..config import TrainConfig
from ..losses import classifier_loss, generator_c_term, input_gradient
from ..models import ModelSpec
from . import CPU, RoleState, check_finite, make_model, make_optimizer


class ClassifierRole(RoleState):
    lr_role = "classifier"
    name = "classifier"

    def __init__(self, config: TrainConfig, spec: ModelSpec, device: torch.device = CPU):
        self.config, self.device = config, device
        self.net = make_model(config, "classifier", spec).to(device)
        self.opt = make_optimizer(config, "classifier", self.net.parameters())

    def serve_slot(self, buf: SlotBuffer, k: int, round_index: int) -> float:
        """Lines 33–37 for slot k: update head k on the other slots ("real") against slot k
        ("fake"), then score slot k with the updated C and save the error. Returns C's loss."""
        if not bool((buf.sample_round == round_index).all()):
            raise RuntimeError(f"classifier: slots hold rounds {buf.sample_round.tolist()}, expected {round_index}")
        self.set_round(round_index)
        K, m = buf.num_slots, self.config.batch_size
        logits = self.net(buf.sample.reshape(K * m, *buf.sample.shape[2:]).to(self.device))[:, k].reshape(K, m)
        others = torch.ones(K, dtype=torch.bool, device=logits.device)
        others[k] = False
        loss = classifier_loss(logits[others], logits[k])
        check_finite(self.name, round_index, "its loss", loss.detach())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.step()

        with self.copying():
            x = buf.sample[k].to(self.device, copy=True).requires_grad_(True)  # see DiscriminatorRole.validate
        own = self.net(x)[:, k]
        term = generator_c_term(own)
        grad = input_gradient(term, x)
        check_finite(self.name, round_index, f"its gradient for slot {k}", grad)
        with self.copying():
            buf.c_grad[k].copy_(grad)
            buf.c_score[k].copy_(own.detach())
        buf.c_term[k] = term.item()
        buf.c_round[k] = round_index
        return loss.item()

    def serve_all(self, buf: SlotBuffer, round_index: int) -> float:
        """The batched variant (engine "batched"): one step on the sum of the K head losses from
        one forward pass, then every slot's error from one more (Algorithm 1: K steps, each head
        updated and its slot scored in turn). Returns the mean head loss."""
        if not bool((buf.sample_round == round_index).all()):
            raise RuntimeError(f"classifier: slots hold rounds {buf.sample_round.tolist()}, expected {round_index}")
        self.set_round(round_index)
        K, m = buf.num_slots, self.config.batch_size
        heads = torch.arange(K, device=self.device)
        logits = self.net(buf.sample.reshape(K * m, *buf.sample.shape[2:]).to(self.device)).reshape(K, m, K)
        losses = []
        for k in range(K):
            own = logits[:, :, k]  # head k on every slot: [K, m]
            losses.append(classifier_loss(own[heads != k], own[k]))
        loss = torch.stack(losses).sum()
        check_finite(self.name, round_index, "its loss", loss.detach())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.step()

        with self.copying():
            x = buf.sample.to(self.device, copy=True).requires_grad_(True)
        own = self.net(x.reshape(K * m, *x.shape[2:])).reshape(K, m, K)[heads, :, heads]  # slot k, head k: [K, m]
        terms = torch.stack([generator_c_term(own[k]) for k in range(K)])
        grad = input_gradient(terms.sum(), x)
        check_finite(self.name, round_index, "its gradient for the slots", grad)
        with self.copying():
            buf.c_grad.copy_(grad)
            buf.c_score.copy_(own.detach())
        buf.c_term.copy_(terms.detach().double())
        buf.c_round.fill_(round_index)
        return float(torch.stack(losses).detach().mean())
