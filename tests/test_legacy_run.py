"""A run made before the package was laid out by concept (sharedgan 0.1, commit 79d3073) still
resumes, bit for bit: its config.json and checkpoint fingerprints name the built-in models by
their old modules (``sharedgan.models:mlp_generator``), which resolve through a name map.

tests/fixtures/legacy-run-0.1 was made by that commit with
``train(TrainConfig(k=2, rounds=40, batch_size=32, hidden=16, eval_samples=200, eval_every=20,
checkpoint_every=10, keep_checkpoints=5, beta_schedule="combined", seed=7, engine="sequential"))``;
its checkpoints of rounds 19 and 39 are kept. Resuming from round 19 with today's code must end
where the old code ended uninterrupted: bit for bit on a processor like the one that made the
fixture; elsewhere to float32 rounding, since matrix kernels round differently on another
instruction set (on an AVX-512 Xeon the resumed rounds differ by at most 1.2e-7)."""
import shutil
from pathlib import Path

import numpy as np
import torch

from sharedgan import load_run, resume
from sharedgan.models.spec import canonical_factory, resolve_factory
from sharedgan.storage import checkpoint
from sharedgan.storage.runfile import read_run_file

FIXTURE = Path(__file__).parent / "fixtures" / "legacy-run-0.1"
ROLES = ["generator-0", "generator-1", "discriminator", "classifier"]
FLOAT32_ROUNDING = 1e-6  # a few float32 ulps at the losses' scale (~1): another processor's kernels, not a bug


def test_old_factory_names_resolve_to_the_same_functions():
    from sharedgan.models import dcgan, mlp
    assert resolve_factory("sharedgan.models:mlp_generator") is mlp.mlp_generator
    assert resolve_factory("sharedgan.dcgan:generator") is dcgan.generator
    assert canonical_factory("sharedgan.dcgan:sdeconv_generator") == "sharedgan.models.dcgan:sdeconv_generator"
    assert canonical_factory("mypackage.models:g") == "mypackage.models:g"


def test_a_run_of_the_old_layout_resumes_bit_for_bit(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    shutil.rmtree(run_dir / "checkpoints" / "round-0000039")
    result = resume(run_dir, {"engine": "sequential"})
    assert result.status == "complete" and result.rounds_completed == 40
    old, new = read_run_file(FIXTURE / "run.h5"), read_run_file(run_dir / "run.h5")
    assert np.array_equal(old["eval/round"], new["eval/round"])
    for name in ("loss/discriminator", "loss/classifier", "loss/generator", "beta", "eval/samples"):
        a, b = old[name], new[name]
        assert a.shape == b.shape and np.array_equal(np.isnan(a), np.isnan(b)), name
        if name != "eval/samples":  # the rounds before the checkpoint are the old run's own record
            assert np.array_equal(a[:20], b[:20], equal_nan=True), f"{name} before the resume differs"
        assert np.allclose(a, b, rtol=0, atol=FLOAT32_ROUNDING, equal_nan=True), f"{name} differs"
    latest = checkpoint.latest(run_dir)
    assert latest.name == "round-0000039"
    for role in ROLES:
        a, b = checkpoint.load_role(FIXTURE / "checkpoints" / "round-0000039", role), checkpoint.load_role(latest, role)
        for key in a["model"]:
            assert torch.allclose(a["model"][key], b["model"][key], rtol=0, atol=FLOAT32_ROUNDING), f"{role} {key}"


def test_a_run_of_the_old_layout_samples(tmp_path):
    run = load_run(FIXTURE)
    samples, which = run.sample(64)
    assert samples.shape == (64, 2) and set(which.tolist()) <= {0, 1}
