"""Are a run's generators unreal because of how their batch norm is evaluated? One run, three ways.

    python examples/studies/bn_statistics.py RUN [--n 2500] [--seed 1]

Every evaluation puts the generators in eval mode, so batch norm uses the running statistics that
training kept (momentum 0.1; with --ema, the averaged ones). If those lagged behind the weights,
the pictures judged would not be the ones D saw in training. This draws the same noise through
each generator of an image run's newest checkpoint three ways and prints realness (precision per
generator, unreal and collapsed counts, the mixture's precision and recall):

1. eval mode with the running statistics (what ``sharedgan eval`` judges);
2. train mode: batch statistics over batches of ``--batch-size`` samples, as in training;
3. precise statistics: the running statistics recomputed as the plain average over 32 batches of
   fresh noise in train mode, then eval mode.
"""
import argparse
import copy

import torch

from sharedgan import load_run
from sharedgan.eval.realness import unreal
from sharedgan.eval.spread import collapsed
from sharedgan.math.seeding import stream
from sharedgan.roles.generator import prior_noise


class TrainMode(torch.nn.Module):
    """A generator sampled in train mode, batch by batch (its running statistics are not read)."""

    def __init__(self, net: torch.nn.Module, batch: int):
        super().__init__()
        self.net, self.batch = net.train(), batch

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.net(chunk) for chunk in z.split(self.batch)])


def precise(net: torch.nn.Module, config, batches: int = 32) -> torch.nn.Module:
    """``net`` with its batch-norm statistics recomputed over ``batches`` fresh batches."""
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # the cumulative average of the batches seen
    net.train()
    for i in range(batches):
        net(prior_noise(config.batch_size, config.noise_dim, config.noise, stream(0, "precise-bn", i)))
    return net.eval()


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--n", type=int, default=2500)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    run = load_run(args.run)
    evaluated = [copy.deepcopy(g) for g in run.generators]
    ways = {"eval mode, running statistics": lambda g: g,
            f"train mode, batches of {run.config.batch_size}": lambda g: TrainMode(g, run.config.batch_size),
            "precise statistics, eval mode": lambda g: precise(g, run.config)}
    for name, way in ways.items():
        run.generators, run._last_draw = [way(copy.deepcopy(g)) for g in evaluated], None
        r, spread = run.realness(n=args.n, seed=args.seed), run.spread(n=args.n, seed=args.seed)
        precision = r.generators["precision"]
        print(f"{name}: precision per generator {', '.join(f'{float(p):.2f}' for p in precision)}; "
              f"{len(unreal(precision))} unreal, {len(collapsed(spread))} collapsed; mixture precision "
              f"{r.mixture['precision']:.2f}, recall {r.mixture['recall']:.2f}", flush=True)


if __name__ == "__main__":
    main()
