"""Spread: a generator that ignores its noise scores near 0, real images near 1, and the flag
falls between them."""
import numpy as np
import torch
from torch.nn import functional as F

from sharedgan.data.images import from_uint8, to_uint8
from sharedgan.eval import spread as diversity


def test_spread_is_the_mean_pairwise_distance_of_coarse_pictures():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 8.0]]).view(3, 1, 1, 2)  # distances 5, 8, 5
    assert abs(diversity.spread(x) - 6.0) < 1e-12
    assert np.isnan(diversity.spread(x[:1]))
    # each side is pooled to at most 8 on its own: a 4 × 64 strip is seen at 4 × 8, not stretched to 8 × 8
    wide = torch.zeros(2, 1, 4, 64)
    wide[1, :, 0, :8] = 1.0  # one pixel of the 4 × 8 view differs, by 1
    assert abs(diversity.spread(wide) - 1.0) < 1e-12


def test_one_picture_whatever_the_noise_is_collapsed_and_real_images_are_not():
    coarse = torch.rand(300, 3, 6, 6, generator=torch.Generator().manual_seed(0))  # pictures with a layout
    images = to_uint8(F.interpolate(coarse * 2 - 1, size=32, mode="bilinear"))
    reference = diversity.reference_spread(images, seed=0)
    real = from_uint8(images[:100])
    one_picture = real[:1].repeat(100, 1, 1, 1) + 0.2 * torch.randn(100, *real.shape[1:])  # + pixel noise
    half_picture = torch.cat([real[:50], one_picture[:50]])  # half its samples are the same picture
    samples = torch.cat([real, one_picture, half_picture])
    which = torch.arange(3).repeat_interleave(100)
    ratios = diversity.generator_spread(samples, which, 4, reference)  # generator 3 drew nothing
    assert 0.9 < ratios[0] < 1.1  # real images against real images
    assert ratios[1] < diversity.COLLAPSED
    pixels = lambda x: torch.pdist(x.flatten(1)).mean()  # noqa: E731
    assert pixels(one_picture) / pixels(real) > diversity.COLLAPSED  # the pixel noise would pass for variety
    assert diversity.COLLAPSED < ratios[2] < ratios[0]
    assert np.isnan(ratios[3])
    assert diversity.collapsed(ratios) == [1]
    text = diversity.format_spread(ratios)
    assert "collapsed           1/4 (generator 1:" in text
    assert "0/4" in diversity.format_spread(ratios[[0, 2]].repeat(2))
    assert np.isnan(diversity.generator_spread(samples, which, 3, 0.0)).all()  # real images all alike
