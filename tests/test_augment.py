"""DiffAugment (``--augment``): what each policy does, that its randomness is the stream's, and
that the gradient reaches the un-augmented sample."""
import pytest
import torch

from sharedgan.math import augment
from sharedgan.math.seeding import stream


def batch(n=6, c=3, size=16):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_policy_parses_in_the_papers_order():
    assert augment.policy("off") == ()
    assert augment.policy("cutout,translation,color") == ("color", "translation", "cutout")


def test_translation_shifts_whole_images_by_at_most_an_eighth():
    x = batch()
    out = augment.translation(x, torch.Generator().manual_seed(1))
    for i in range(len(x)):  # each output is its input shifted, zeros moved in
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(out[i], _shift(x[i], dy, dx))]
        assert found, i


def _shift(img, dy, dx):
    c, h, w = img.shape
    out = torch.zeros_like(img)
    src = img[:, max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)]
    out[:, max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)] = src
    return out


def test_cutout_zeroes_a_square_of_half_the_side():
    x = torch.ones(8, 1, 16, 16)
    out = augment.cutout(x, torch.Generator().manual_seed(2))
    zeros = (out == 0).flatten(1).sum(1)
    assert ((zeros > 0) & (zeros <= 64)).all()  # 8 × 8, clipped at the borders
    assert (zeros == 64).any()


def test_color_moves_brightness_saturation_and_contrast_per_image():
    x = batch()
    out = augment.color(x, torch.Generator().manual_seed(3))
    assert out.shape == x.shape and not torch.equal(out, x)
    grey = x.mean(1, keepdim=True).expand_as(x)  # a grey image stays grey: saturation acts on colour
    g_out = augment.color(grey, torch.Generator().manual_seed(3))
    assert torch.allclose(g_out, g_out.mean(1, keepdim=True).expand_as(g_out), atol=1e-6)


def test_the_stream_decides_and_the_gradient_reaches_the_sample():
    x = batch().requires_grad_(True)
    policies = augment.policy("translation,cutout,color")
    a = augment.diff_augment(x, policies, stream(5, "augment-fake", 0, 3))
    b = augment.diff_augment(x, policies, stream(5, "augment-fake", 0, 3))
    c = augment.diff_augment(x, policies, stream(5, "augment-fake", 1, 3))
    assert torch.equal(a, b) and not torch.equal(a, c)
    (grad,) = torch.autograd.grad(a.sum(), x)
    assert grad.abs().sum() > 0
    moved = augment.diff_augment(x, ("translation", "cutout"), stream(5, "augment-fake", 0, 3))
    (grad,) = torch.autograd.grad(moved.sum(), x)
    assert set(grad.unique().tolist()) <= {0.0, 1.0} and (grad == 0).any()  # cut-out or shifted-out pixels: none


@pytest.mark.parametrize("policy", ["translation", "cutout", "color"])
def test_each_policy_is_differentiable(policy):
    x = batch().requires_grad_(True)
    out = augment.diff_augment(x, (policy,), torch.Generator().manual_seed(4))
    assert torch.autograd.gradcheck(lambda t: augment.diff_augment(t, (policy,), torch.Generator().manual_seed(4)),
                                    (x[:2, :, :6, :6].detach().double().requires_grad_(True),))
    assert out.requires_grad
