"""Image runs end to end: CIFAR-10, MNIST and a user's .h5 through launch and sample, both engines
equal, and the DCGAN models' shapes and initialisation."""
import shutil

import h5py
import numpy as np
import pytest
import torch

from helpers.cli import cli
from helpers.data_files import cifar_folder, learnable_images, mnist_files
from sharedgan import TrainConfig, load_run, train
from sharedgan.errors import FactoryError
from sharedgan.models.dcgan import classifier, discriminator, generator
from sharedgan.models.spec import ModelSpec
from sharedgan.storage.runfile import read_run_file

pytestmark = pytest.mark.processes  # every test here starts processes (see pytest.ini)

SMOKE = dict(k=2, width=4, rounds=8, batch_size=8, eval_every=4, checkpoint_every=4, seed=3)


@pytest.mark.parametrize("size, channels", [(32, 3), (64, 1)])
def test_dcgan_shapes(size, channels):
    spec = ModelSpec((channels, size, size), noise_dim=100, num_generators=5, width=8)
    g, d, c = generator(spec), discriminator(spec), classifier(spec)
    x = g(torch.randn(6, 100))
    assert x.shape == (6, channels, size, size) and x.abs().max() <= 1.0  # tanh
    assert d(x).shape == (6,) and c(x).shape == (6, 5)


def test_dcgan_initialisation_and_width():
    spec = ModelSpec((3, 32, 32), 100, 2, width=64)
    d = discriminator(spec)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert abs(weights.mean().item()) < 1e-3 and abs(weights.std().item() - 0.02) < 1e-3
    norms = torch.cat([m.weight for m in d.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(norms.mean().item() - 1.0) < 0.01
    narrow = sum(p.numel() for p in discriminator(ModelSpec((3, 32, 32), 100, 2, width=8)).parameters())
    assert narrow * 30 < sum(p.numel() for p in d.parameters())  # --width scales every layer
    with pytest.raises(FactoryError, match="32 × 32 or 64 × 64"):
        generator(ModelSpec((1, 28, 28), 100, 2))


def test_cifar10_trains_in_both_engines_and_they_agree(tmp_path, leak_check):
    cifar_folder(tmp_path / "data", n=16)
    runs = {}
    for engine in ("sequential", "parallel"):
        runs[engine] = train(TrainConfig(dataset="cifar10", data_dir=str(tmp_path / "data"), engine=engine,
                                         out=str(tmp_path / engine), **SMOKE)).run_dir
    a, b = (read_run_file(runs[e] / "run.h5") for e in ("sequential", "parallel"))
    for name in ("loss/generator", "loss/discriminator", "loss/classifier", "eval/images"):
        assert np.array_equal(a[name], b[name]), name
    assert a["eval/images"].shape == (2, 2, 8, 32, 32, 3) and a["eval/images"].dtype == np.uint8
    assert a["eval/spread"].shape == (2, 2) and np.array_equal(a["eval/spread"], b["eval/spread"])
    assert (a["eval/spread"] > 0).all()
    assert np.isfinite(a["loss/generator"]).all()
    assert (runs["parallel"] / "samples.png").exists() and (runs["parallel"] / "evolution.png").exists()
    for run in runs.values():  # a grid, one row per generator, at every evaluation
        assert sorted(p.name for p in (run / "grids").iterdir()) == ["round-0000004.png", "round-0000008.png"]
    res = cli("sample", str(runs["parallel"]), "--n", "20", "--out", str(tmp_path / "s.h5"), "--png",
              str(tmp_path / "s.png"))
    assert res.returncode == 0, res.stderr
    with h5py.File(tmp_path / "s.h5") as f:
        assert f["images"].shape == (20, 32, 32, 3) and f["images"].dtype == np.uint8
        assert set(f["generator"][()].tolist()) <= {0, 1}
    assert (tmp_path / "s.png").stat().st_size > 0
    res = cli("eval", str(runs["parallel"]), "--n", "40", "--classifier-epochs", "2")
    assert res.returncode == 0, res.stderr
    # random pixels with random labels: the classifier cannot learn them, so coverage is refused
    assert "class coverage not reported: the classifier is right on" in res.stdout, res.stdout
    assert "spread per generator" in res.stdout and "collapsed" in res.stdout  # needs no labels
    assert "where the time goes" in res.stdout and "Traceback" not in res.stderr


def test_eval_reports_class_coverage_of_an_image_run(tmp_path):
    images, labels = learnable_images(240, 3)
    with h5py.File(tmp_path / "stripes.h5", "w") as f:
        f["images"], f["labels"] = images, labels
    run = train(TrainConfig(dataset=str(tmp_path / "stripes.h5"), engine="sequential", out=str(tmp_path / "run"),
                            data_dir=str(tmp_path / "data"), **SMOKE)).run_dir
    res = cli("eval", str(run), "--n", "60", "--classifier-epochs", "6")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "classifier accuracy" in out and "classes covered" in out and "generator × predicted class" in out, out
    table = out[out.index("generator × predicted class"):].splitlines()[2:5]
    assert [line.split()[0] for line in table] == ["0", "1", "all"]
    assert sum(int(v) for v in table[2].split()[1:]) == 60  # every sample labelled once
    assert list((tmp_path / "data" / "cache").glob("stripes.classifier-*.pt"))  # cached for the next eval
    assert "realness (PRDC in the coverage classifier's features; k = 5" in out and "unreal" in out, out
    rows = {line.split()[0] + line.split()[1]: line for line in out.splitlines() if line.startswith("gen ")}
    assert set(rows) == {"gen0", "gen1"}
    # during training too: every evaluation judged each generator and the mixture (classifier trained once)
    data = read_run_file(run / "run.h5")
    assert data["eval/precision"].shape == (2, 2) and np.isfinite(data["eval/precision"]).all()
    assert data["eval/mixture_recall"].shape == (2,)
    assert data["attrs"]["realness_samples"] == 24  # M: bound by the 24 held-out images
    assert 0.5 < data["attrs"]["realness_real_precision"] <= 1.0
    at = cli("eval", str(run), "--n", "60", "--classifier-epochs", "6", "--checkpoint", "4")
    assert at.returncode == 0 and "round 4 of 8" in at.stdout, at.stdout + at.stderr
    missing = cli("eval", str(run), "--checkpoint", "3")
    assert missing.returncode == 2 and "keeps no checkpoint of round 3; it keeps rounds 4, 8" in missing.stderr
    res = cli("eval", str(run), "--n", "60", "--classifier-epochs", "6", "--inception",
              "--inception-weights", str(tmp_path / "nowhere.pth"))
    assert res.returncode == 0 and "Traceback" not in res.stderr
    assert "torch-fidelity" in res.stdout or "no Inception weights at" in res.stdout  # a clear line, not a crash


def test_eval_writes_its_classifier_to_the_user_cache_not_where_the_run_points(tmp_path, private_user_cache):
    images, labels = learnable_images(120, 3)
    with h5py.File(tmp_path / "stripes.h5", "w") as f:
        f["images"], f["labels"] = images, labels
    run = train(TrainConfig(dataset=str(tmp_path / "stripes.h5"), engine="sequential", out=str(tmp_path / "run"),
                            data_dir=str(tmp_path / "data"), realness="off", **SMOKE)).run_dir
    before = sorted(p.name for p in (tmp_path / "data").rglob("*"))
    kept = private_user_cache / "sharedgan" / "classifiers"
    cached = set(kept.glob("*")) if kept.exists() else set()  # other tests' evals share the session's cache
    assert not any("classifier" in name for name in before)  # --realness off: training made none
    res = cli("eval", str(run), "--n", "30", "--classifier-epochs", "2")
    assert res.returncode == 0 and "held-out real images" in res.stdout, res.stdout + res.stderr  # it was trained
    assert sorted(p.name for p in (tmp_path / "data").rglob("*")) == before  # nothing new beside the data
    assert len([p for p in kept.glob("classifier-*-e2-s0.pt") if p not in cached]) == 1


def test_mnist_and_own_h5_train(tmp_path):
    mnist_files(tmp_path / "mnist", n=16, gz=False)
    mnist = train(TrainConfig(dataset="mnist", data_dir=str(tmp_path / "mnist"), engine="sequential",
                              out=str(tmp_path / "m"), **SMOKE))
    assert read_run_file(mnist.run_dir / "run.h5")["eval/images"].shape[-3:] == (32, 32, 1)
    with h5py.File(tmp_path / "mine.h5", "w") as f:
        f["images"] = np.random.default_rng(0).integers(0, 256, (12, 64, 64, 3), dtype=np.uint8)
    own = train(TrainConfig(dataset=str(tmp_path / "mine.h5"), engine="sequential", out=str(tmp_path / "o"),
                            data_dir=str(tmp_path / "cache-home"), **SMOKE))
    data = read_run_file(own.run_dir / "run.h5")
    assert data["eval/images"].shape[-3:] == (64, 64, 3) and data["attrs"]["data_name"] == "mine"
    # sampling needs nothing but the run directory: not the data, not its cache
    shutil.rmtree(tmp_path / "cache-home")
    (tmp_path / "mine.h5").unlink()
    samples, which = load_run(own.run_dir).sample(5)
    assert samples.shape == (5, 3, 64, 64) and which.shape == (5,)


@pytest.mark.parametrize("options", [
    dict(generator="sdeconv", bank=3, classifier="pairwise", feature_matching="add", minibatch_features=4,
         discriminator_norm="none"),
    dict(spectral_norm="both", generator_loss="hinge", r1=1.0, r1_every=2, augment="translation,cutout,color",
         ema=0.9, feature_matching="add", precision="bf16", slot_precision="bf16", generator="resize"),
    pytest.param(dict(virtual_batch_norm=True, classifier="one-vs-all", shared_trunk=True), marks=pytest.mark.slow),
    pytest.param(dict(share_generator_body=True, classifier="softmax", feature_matching="replace"),
                 marks=pytest.mark.slow),
], ids=["sdeconv+pairwise+feature-matching+minibatch+d-without-norm",
        "spectral-norm+hinge+r1+augment+ema+bf16+bf16-slots+resize",
        "virtual-batch-norm+one-vs-all+shared-trunk",
        "shared-body+softmax+feature-matching"])
def test_objective_options_train_on_images_and_the_engines_agree(tmp_path, options):
    cifar_folder(tmp_path / "data", n=16)
    runs = {e: train(TrainConfig(dataset="cifar10", data_dir=str(tmp_path / "data"), engine=e,
                                 out=str(tmp_path / e), **{**SMOKE, "k": 3, **options})).run_dir
            for e in ("sequential", "parallel")}
    a, b = (read_run_file(runs[e] / "run.h5") for e in ("sequential", "parallel"))
    for name in ("loss/generator", "loss/discriminator", "loss/classifier", "eval/images"):
        assert np.isfinite(a[name]).all() and np.array_equal(a[name], b[name]), name


def test_spectral_norm_bounds_every_layer_of_d_and_drops_its_batch_norm():
    spec = ModelSpec((1, 32, 32), noise_dim=100, num_generators=3, width=8, spectral_norm="discriminator")
    d, c = discriminator(spec), classifier(spec)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in c.modules())  # C only with "both"
    x = torch.randn(16, 1, 32, 32)
    for _ in range(30):  # each training forward is one power iteration
        d(x)
    layers = [m for m in d.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 4  # three stride-2 convolutions and the 4 × 4 head
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=0.02)
    both = ModelSpec((1, 32, 32), noise_dim=100, num_generators=3, width=8, spectral_norm="both")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in classifier(both).modules())


def test_discriminator_norm_none_drops_only_ds_batch_norm_and_r1_sees_each_samples_own_gradient():
    from sharedgan.math.losses import r1_penalty
    spec = ModelSpec((1, 32, 32), noise_dim=100, num_generators=3, width=8, discriminator_norm="none")
    d, c = discriminator(spec), classifier(spec)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in c.modules())
    assert sum(isinstance(m, torch.nn.Conv2d) for m in d.modules()) == 4  # the layers stay; only the norm goes
    dcgan_d = discriminator(ModelSpec((1, 32, 32), noise_dim=100, num_generators=3, width=8))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in dcgan_d.modules())
    # without batch norm a sample's logit depends on that sample alone, so R1 over a batch is the
    # mean of each sample's own penalty
    x = torch.randn(4, 1, 32, 32)
    batch = x.clone().requires_grad_(True)
    whole = r1_penalty(d(batch), batch, 2.0)
    alone = []
    for row in x:
        one = row[None].clone().requires_grad_(True)
        alone.append(r1_penalty(d(one), one, 2.0))
    assert whole.item() == pytest.approx(torch.stack(alone).mean().item(), rel=1e-5)


def test_ema_generators_resume_bit_for_bit_and_are_what_sample_draws(tmp_path):
    from helpers.runs import assert_same_run, cut_back_to
    from sharedgan import resume
    from sharedgan.roles.generator import averaged_weights
    from sharedgan.storage import checkpoint
    cifar_folder(tmp_path / "data", n=16)
    cfg = dict(dataset="cifar10", data_dir=str(tmp_path / "data"), engine="sequential", **SMOKE, ema=0.9,
               augment="translation,color", r1=0.5, r1_every=3)
    whole = train(TrainConfig(out=str(tmp_path / "whole"), **cfg)).run_dir
    shutil.copytree(whole, tmp_path / "cut")
    cut_back_to(tmp_path / "cut", 3)
    assert resume(tmp_path / "cut").rounds_completed == 8
    assert_same_run(whole, tmp_path / "cut", TrainConfig(**cfg).roles)
    for k in range(2):
        a, b = (checkpoint.load_role(checkpoint.latest(d), f"generator-{k}")["ema"] for d in (whole, tmp_path / "cut"))
        assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    state = checkpoint.load_role(checkpoint.latest(whole), "generator-0")
    assert int(state["ema"]["n_averaged"]) == 8
    averaged = averaged_weights(state)
    assert set(averaged) == set(state["model"]) and any(
        not torch.equal(averaged[key], state["model"][key]) for key in averaged)
    run = load_run(whole)
    assert all(torch.equal(run.generators[0].state_dict()[key], averaged[key]) for key in averaged)


def test_an_image_run_written_before_spread_existed_resumes(tmp_path):
    """run.h5 files from before eval/spread: a resumed run keeps their evaluations (spread NaN)."""
    from sharedgan import resume
    from sharedgan.storage import checkpoint
    cifar_folder(tmp_path / "data", n=16)
    run = train(TrainConfig(dataset="cifar10", data_dir=str(tmp_path / "data"), engine="sequential",
                            out=str(tmp_path / "run"), **SMOKE)).run_dir
    for folder in checkpoint.complete_checkpoints(run):
        if checkpoint.round_of(folder) > 3:
            shutil.rmtree(folder)
    with h5py.File(run / "run.h5", "a") as f:
        del f["eval/spread"]
    resume(run)
    spread = read_run_file(run / "run.h5")["eval/spread"]
    assert spread.shape == (2, 2) and np.isnan(spread[0]).all() and np.isfinite(spread[1]).all()


def test_an_image_run_from_before_manifests_held_the_sample_shape_samples_without_its_data(tmp_path):
    """Older manifests lack sample_shape: the shape the generator's weights fit stands in, so
    sampling needs the run directory alone (its data cache may be long gone)."""
    import json

    from sharedgan.storage import checkpoint
    mnist_files(tmp_path / "mnist", n=16, gz=False)
    run = train(TrainConfig(dataset="mnist", data_dir=str(tmp_path / "mnist"), engine="sequential",
                            out=str(tmp_path / "m"), realness="off", **SMOKE)).run_dir
    for folder in checkpoint.complete_checkpoints(run):
        manifest = json.loads((folder / "manifest.json").read_text())
        del manifest["sample_shape"]
        (folder / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(tmp_path / "mnist")  # the data and its cache: gone
    samples, which = load_run(run).sample(6)
    assert samples.shape == (6, 1, 32, 32) and set(which.tolist()) <= {0, 1}
    res = cli("sample", str(run), "--n", "4", "--out", str(tmp_path / "s.h5"), "--png", str(tmp_path / "s.png"))
    assert res.returncode == 0 and (tmp_path / "s.png").is_file(), res.stderr
    with h5py.File(tmp_path / "s.h5") as f:
        assert f["images"].shape == (4, 32, 32, 1)
