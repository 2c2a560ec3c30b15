"""A user's own generator for examples/embed.py: any function ModelSpec -> torch.nn.Module works."""
from torch import nn


class ResidualGenerator(nn.Module):
    def __init__(self, spec, width=64):
        super().__init__()
        self.inp = nn.Linear(spec.noise_dim, width)
        self.block = nn.Sequential(nn.LeakyReLU(0.2), nn.Linear(width, width), nn.LeakyReLU(0.2),
                                   nn.Linear(width, width))
        self.out = nn.Linear(width, spec.sample_shape[0])

    def forward(self, z):
        h = self.inp(z)
        return self.out(h + self.block(h))


def residual_generator(spec):
    return ResidualGenerator(spec)
