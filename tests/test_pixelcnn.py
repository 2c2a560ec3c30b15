"""HGAN's PixelCNN teacher (sharedgan.models.pixelcnn): autoregressive by gradients, log-likelihood
by hand, learning, sampling and the level mapping."""
import math

import pytest
import torch

from sharedgan.models.pixelcnn import PixelCNN, from_levels, pixelcnn_teacher, to_levels


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The machine is shared: one thread, as the rest of the suite's torch work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _images(shape, n, seed):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _fit(model, data, steps, lr=1e-2):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        model.bits_per_dim(data).backward()
        opt.step()
    return model


@pytest.mark.parametrize("channels", [1, 3])
def test_autoregressive_by_gradients(channels):
    """logits(c, i, j) depend on the pixels before (i, j) in raster order and on the channels < c
    of (i, j) only (R, G, B order), and do depend on earlier ones, the up-right one included."""
    size = 8
    model = pixelcnn_teacher((channels, size, size), width=12, seed=1)
    x = _images((channels, size, size), 2, seed=2).requires_grad_(True)
    logits = model.logits(x)
    order = torch.arange(size * size).view(size, size)  # raster index of each pixel
    positions = [(0, 0), (0, size - 1), (size - 1, 0), (size - 1, size - 1), (0, 3), (1, 0),
                 (size // 2, size // 2 + 1)]
    for i, j in positions:
        for c in range(channels):
            (grad,) = torch.autograd.grad(logits[:, :, c, i, j].sum(), x, retain_graph=True)
            before = (order < order[i, j])[None].expand(channels, -1, -1).clone()
            before[:c, i, j] = True  # this pixel's earlier channels
            assert (grad[:, ~before] == 0).all(), f"({c}, {i}, {j}) sees a later input"
            if before.any():
                assert (grad[:, before] != 0).any(), f"({c}, {i}, {j}) sees nothing"
            if j > 0:
                assert (grad[:, :, i, j - 1] != 0).any(), f"({c}, {i}, {j}) misses its left neighbour"
            if i > 0:
                assert (grad[:, :, i - 1, j] != 0).any(), f"({c}, {i}, {j}) misses the pixel above"
            if i > 0 and j + 1 < size:  # the naive PixelCNN's blind spot
                assert (grad[:, :, i - 1, j + 1] != 0).any(), f"({c}, {i}, {j}) misses the up-right pixel"
            if c > 0:
                assert (grad[:, :c, i, j] != 0).all(), f"({c}, {i}, {j}) misses this pixel's earlier channels"


def test_sampling_path_equals_logits():
    """Sampling's cropped passes (one band of rows, a few columns) give logits() exactly."""
    model = pixelcnn_teacher((3, 10, 10), width=9, seed=3)
    x = _images((3, 10, 10), 3, seed=4)
    with torch.no_grad():
        full = model.logits(x)
        for i in range(10):
            links = model._row_links(x, i)
            for j in range(10):
                torch.testing.assert_close(model._pixel_logits(x, links, i, j), full[..., i, j],
                                           rtol=1e-5, atol=1e-6)


def test_log_prob_by_hand():
    model = pixelcnn_teacher((1, 4, 4), width=8, seed=5)
    x = _images((1, 4, 4), 3, seed=6)
    x[0, 0, 0, 0], x[1, 0, 2, 3] = -1.0, 1.0  # the end levels
    logits = model.logits(x)
    got = model.log_prob(x)
    assert got.shape == (3,)
    for n in range(3):
        total = 0.0
        for i in range(4):
            for j in range(4):
                level = min(255, max(0, round((x[n, 0, i, j].item() + 1) / 2 * 255)))
                total += torch.log_softmax(logits[n, :, 0, i, j].double(), 0)[level].item()
        assert got[n].item() == pytest.approx(total, abs=1e-4)
    bpd = -got.mean().item() / (16 * math.log(2))
    assert model.bits_per_dim(x).item() == pytest.approx(bpd, rel=1e-6)


def test_bits_per_dim_untrained_then_learned():
    """Untrained: logits z of std σ around 0, so −log p(level) = logsumexp(z) − z_level averages
    ln 256 + σ²/2 (second order), i.e. 8 + σ²/(2 ln 2) bits, and its first-order part has mean 0
    over 4·3·16·16 dims. With σ < 0.05 that is within 0.002 bits of 8: tolerance 0.01.
    Trained, 200 Adam steps on 8 binary 8 × 8 images: at most 1 bit/dim once only the two levels
    are left, below it as it memorises them; < 1.5 is a clear fit, not luck."""
    shape = (3, 16, 16)
    model = pixelcnn_teacher(shape, width=16, seed=7)
    x = _images(shape, 4, seed=8)
    with torch.no_grad():
        assert model.logits(x).std().item() < 0.05
        assert model.bits_per_dim(x).item() == pytest.approx(8.0, abs=0.01)

    binary = torch.where(_images((1, 8, 8), 8, seed=9) > 0, 1.0, -1.0)
    model = pixelcnn_teacher((1, 8, 8), width=16, seed=10)
    start = model.bits_per_dim(binary).item()
    _fit(model, binary, 200)
    end = model.bits_per_dim(binary).item()
    # two levels only, so the first-order part no longer averages out: near 8, not within 0.01
    assert start > 7.9 and end < 1.5, (start, end)


def test_sample_determinism_shape_and_range():
    model = pixelcnn_teacher((3, 4, 4), width=6, seed=11)
    a = model.sample(5, torch.Generator().manual_seed(0))
    b = model.sample(5, torch.Generator().manual_seed(0))
    c = model.sample(5, torch.Generator().manual_seed(1))
    assert a.shape == (5, 3, 4, 4) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= -1 and a.max() <= 1
    assert torch.equal(from_levels(to_levels(a)), a)  # on the levels
    assert len(to_levels(a).unique()) > 20  # untrained: near uniform over 256 levels, not stuck


def test_samples_of_a_constant_data_set():
    level = 200
    data = from_levels(torch.full((8, 3, 6, 6), level))
    model = _fit(pixelcnn_teacher((3, 6, 6), width=9, seed=12), data, 60)
    samples = model.sample(8, torch.Generator().manual_seed(2))
    share = (to_levels(samples) == level).float().mean().item()
    assert share >= 0.95, share


def test_teacher_seed_and_global_rng():
    state = torch.get_rng_state()
    a, b = pixelcnn_teacher((1, 8, 8), 8, seed=3), pixelcnn_teacher((1, 8, 8), 8, seed=3)
    c = pixelcnn_teacher((1, 8, 8), 8, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)
    assert isinstance(a, PixelCNN) and a.sample_shape == (1, 8, 8)


def test_level_mapping_round_trip():
    levels = torch.arange(256)
    values = from_levels(levels)
    assert values[0] == -1 and values[-1] == 1
    assert torch.equal(to_levels(values), levels)
    assert to_levels(torch.tensor([-1.5, -1.0, 0.0, 1.0, 1.5])).tolist() == [0, 0, 128, 255, 255]
