"""Devices and per-process preparation: the slot buffer and the models on CUDA. Device parsing,
placement and denormal flushing are tested everywhere;
training on a GPU only where one is present (CI has none: those tests skip)."""
import numpy as np
import pytest
import torch

from sharedgan import TrainConfig, train
from sharedgan.errors import ConfigError
from sharedgan.runtime.devices import parse_placement, role_device
from sharedgan.storage.runfile import read_run_file

pytestmark = pytest.mark.processes  # every test here starts processes (see pytest.ini)

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device here")
SMALL = dict(k=2, rounds=30, batch_size=32, eval_every=15, checkpoint_every=15, seed=5)


def test_placement_deals_generators_over_their_devices():
    cfg = TrainConfig(k=5, devices="generators:cpu,cpu:0;classifier:cpu")
    assert ([role_device(cfg, f"generator-{k}") for k in range(5)]
            == [torch.device("cpu"), torch.device("cpu", 0)] * 2 + [torch.device("cpu")])
    assert role_device(cfg, "discriminator") == torch.device("cpu")  # unnamed: --device
    assert parse_placement(None) == {} and list(parse_placement(" generators:cpu ; ")) == ["generators"]


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_cuda_is_refused_where_there_is_none():
    with pytest.raises(ConfigError, match=r"no CUDA device here \(torch.cuda.is_available\(\) is False\)"):
        TrainConfig(device="cuda").validate()
    with pytest.raises(ConfigError, match="no CUDA device here"):
        TrainConfig(devices="discriminator:cuda:0").validate()


def test_placement_on_the_cpu_changes_nothing(tmp_path):
    """Every role placed explicitly (on the CPU here) runs the very same math."""
    runs = [train(TrainConfig(out=str(tmp_path / name), engine="parallel", **{**SMALL, "rounds": 10}, **extra)).run_dir
            for name, extra in (("plain", {}),
                                ("placed", {"devices": "generators:cpu;discriminator:cpu;classifier:cpu"}))]
    a, b = (read_run_file(r / "run.h5") for r in runs)
    assert np.array_equal(a["loss/generator"], b["loss/generator"])


def _same(runs):
    a, b = (read_run_file(r / "run.h5") for r in runs)
    return all(np.array_equal(a[name], b[name]) for name in ("loss/generator", "loss/discriminator", "loss/classifier"))


@needs_cuda
@pytest.mark.parametrize("dataset", ["ring8", "images", "images-bf16"])
def test_engines_agree_on_cuda(tmp_path, leak_check, dataset):
    extra = {}
    if dataset.startswith("images"):
        from data_files import cifar_folder
        cifar_folder(tmp_path / "data", n=16)
        extra = dict(dataset="cifar10", data_dir=str(tmp_path / "data"), width=8, rounds=8, eval_every=4,
                     checkpoint_every=4, batch_size=8)
    cfg = {**SMALL, **extra, "device": "cuda", "deterministic": True}
    if dataset.endswith("bf16"):  # (on CUDA autocast also takes spectral norm's power iteration to bf16)
        cfg.update(precision="bf16", spectral_norm="both", r1=1.0)
    runs = [train(TrainConfig(out=str(tmp_path / e), engine=e, **cfg)).run_dir for e in ("sequential", "parallel")]
    assert _same(runs), "the engines differ on CUDA with deterministic kernels"
    # every process's own peak CUDA memory: the sequential engine's one, each role of the parallel one
    attrs = [read_run_file(run / "run.h5")["attrs"] for run in runs]
    assert [name for name in attrs[0] if name.startswith("peak_cuda/")] == ["peak_cuda/runner"]
    roles = {name.removeprefix("peak_cuda/") for name, v in attrs[1].items() if name.startswith("peak_cuda/") and v > 0}
    assert roles == {"runner", *TrainConfig(**cfg).validate().processes}


@needs_cuda
def test_a_killed_child_on_cuda_leaves_nothing(tmp_path, launch, leak_check):
    job = launch("--k", "2", "--rounds", "100000", "--device", "cuda", "--eval-every", "100000",
                 "--checkpoint-every", "100000")
    job.wait_for_log("training started")
    import os
    import signal
    os.kill(job.pids()["generator-1"], signal.SIGKILL)
    code, _, err = job.finish(60)
    assert code == 1 and "generator-1 was killed by SIGKILL" in err


@pytest.mark.skipif(not HAS_CUDA or torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_roles_on_two_gpus_match_one(tmp_path):
    placed = {"devices": "generators:cuda:0,cuda:1;discriminator:cuda:1;classifier:cuda:0"}
    runs = [train(TrainConfig(out=str(tmp_path / n), engine="parallel", device="cuda:0",
                              deterministic=True, **SMALL, **x)).run_dir
            for n, x in (("one", {}), ("two", placed))]
    assert _same(runs)


def test_every_compute_process_flushes_denormals():
    """Saturated heads push C into denormal floats, ~10× slower on a CPU; prepare() flushes them."""
    from sharedgan.runtime import devices
    denormal = torch.tensor([1e-39], dtype=torch.float32)
    try:
        devices.prepare(TrainConfig(), torch.device("cpu"))
        assert (denormal * 1.0).item() == 0.0
    finally:
        torch.set_flush_denormal(False)
    assert (denormal * 1.0).item() != 0.0
