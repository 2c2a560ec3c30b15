"""The parallel engine reproduces the sequential one exactly: the proof that the data plane is right."""
import numpy as np
import pytest
import torch

from sharedgan import TrainConfig, train
from sharedgan.runtime.buffer import buffer_bytes, slot_fields
from sharedgan.storage import checkpoint
from sharedgan.storage.runfile import format_time_breakdown, read_run_file

pytestmark = pytest.mark.processes  # every test here starts processes (see pytest.ini)

SERIES = ["loss/discriminator", "loss/classifier", "loss/generator", "beta", "term/discriminator", "term/classifier"]


def _final_states(run_dir, roles):
    ckpt = checkpoint.latest(run_dir)
    return {r: torch.load(ckpt / f"{r}.pt", weights_only=True)["model"] for r in roles}


def _max_difference(a_dir, b_dir, roles):
    a, b = read_run_file(a_dir / "run.h5"), read_run_file(b_dir / "run.h5")
    worst = 0.0
    for name in SERIES + ["eval/samples"]:
        assert a[name].shape == b[name].shape, name
        assert np.array_equal(np.isfinite(a[name]), np.isfinite(b[name])), name  # NaN in the same places
        worst = max(worst, float(np.nanmax(np.abs(a[name] - b[name]), initial=0.0)))
    sa, sb = _final_states(a_dir, roles), _final_states(b_dir, roles)
    for role in roles:
        if sa[role].keys() != sb[role].keys():
            return float("inf")  # different models
        for key in sa[role]:
            worst = max(worst, float((sa[role][key] - sb[role][key]).abs().max()))
    return worst


@pytest.mark.parametrize("schedule", ["time", "combined"])
def test_parallel_equals_sequential_over_200_rounds_at_k4(tmp_path, leak_check, schedule):
    base = dict(k=4, rounds=200, eval_every=100, eval_samples=500, seed=7, beta_schedule=schedule, threads=1)
    seq = train(TrainConfig(engine="sequential", out=str(tmp_path / "seq"), **base))
    par = train(TrainConfig(engine="parallel", out=str(tmp_path / "par"), **base))
    assert seq.rounds_completed == par.rounds_completed == 200
    roles = TrainConfig(**base).roles
    assert _max_difference(seq.run_dir, par.run_dir, roles) <= 1e-6
    _check_time_breakdown(read_run_file(seq.run_dir / "run.h5"), read_run_file(par.run_dir / "run.h5"), k=4)


def _check_time_breakdown(seq, par, k):
    """Every role reports compute / wait / copy for every round; only the parallel engine waits."""
    for data in (seq, par):
        assert data["time/generator/compute"].shape == data["time/generator/copy"].shape == (200, k)
        for role in ("generator", "discriminator", "classifier"):
            for part in ("compute", "wait", "copy"):
                values = data[f"time/{role}/{part}"]
                assert np.isfinite(values).all() and (values >= 0).all(), f"{role} {part}"
            assert (data[f"time/{role}/compute"] > 0).all() and (data[f"time/{role}/copy"] > 0).all()
    assert all((seq[f"time/{role}/wait"] == 0).all() for role in ("generator", "discriminator", "classifier"))
    # in lock-step every generator waits for D and C each round, and D waits for the samples
    assert (par["time/generator/wait"] > 0).all() and par["time/discriminator/wait"].sum() > 0
    # and every process's peak memory (a torch process holds well over 50 MB), the buffer's size
    peaks = {name: value for name, value in par["attrs"].items() if name.startswith("peak_rss/")}
    assert set(peaks) == {f"peak_rss/{p}" for p in ["runner", "discriminator", "classifier",
                                                      *(f"generator-{j}" for j in range(k))]}
    assert all(value > 50 * 2**20 for value in peaks.values()) and list(seq["attrs"]).count("peak_rss/runner") == 1
    fields = slot_fields(par["config"]["batch_size"], (2,), par["config"]["eval_samples"])
    assert par["attrs"]["slot_buffer_bytes"] == seq["attrs"]["slot_buffer_bytes"] == buffer_bytes(fields, k)
    assert "peak resident memory: runner" in format_time_breakdown(par)
    assert not any(name.startswith("peak_cuda/") for name in par["attrs"])  # (a CPU run: tests/test_cuda.py)


def test_peak_memory_lines_by_hand():
    from sharedgan.storage.runfile import format_memory
    mb = 2**20
    attrs = {"peak_rss/runner": 300 * mb, "peak_rss/discriminator": 280 * mb, "peak_rss/generator-0": 270 * mb,
             "peak_rss/generator-1": 290 * mb, "slot_buffer_bytes": mb // 2}
    line = ("peak resident memory: runner 300 MB, discriminator 280 MB, generators 270–290 MB each; 1,140 MB in all "
            "(pages they share counted in each); slot buffer 0.50 MB")
    assert format_memory(attrs) == line
    attrs |= {"peak_cuda/runner": 64 * mb, "peak_cuda/discriminator": 10 * mb, "peak_cuda/generator-0": 5 * mb,
              "peak_cuda/generator-1": 5 * mb}
    assert format_memory(attrs) == line + ("\npeak CUDA memory: runner 64 MB, discriminator 10 MB, generators 5 MB "
                                           "each; 84 MB in all (each process's own allocations)")


def test_k1_is_a_plain_gan_in_both_engines(tmp_path, leak_check):
    base = dict(k=1, rounds=60, eval_every=30, eval_samples=200, batch_size=32, hidden=16, seed=3)
    seq = train(TrainConfig(engine="sequential", out=str(tmp_path / "seq"), **base))
    par = train(TrainConfig(engine="parallel", out=str(tmp_path / "par"), **base))
    assert TrainConfig(**base).roles == ["generator-0", "discriminator"]
    data = read_run_file(par.run_dir / "run.h5")
    assert np.isnan(data["loss/classifier"]).all() and (data["beta"] == 0).all()
    assert _max_difference(seq.run_dir, par.run_dir, ["generator-0", "discriminator"]) <= 1e-6


def test_different_seeds_differ(tmp_path):
    base = dict(k=2, rounds=5, eval_every=5, eval_samples=100, batch_size=16, hidden=8, engine="sequential")
    a = train(TrainConfig(seed=1, out=str(tmp_path / "a"), **base))
    b = train(TrainConfig(seed=2, out=str(tmp_path / "b"), **base))
    assert _max_difference(a.run_dir, b.run_dir, ["generator-0"]) > 1e-3


def test_grid25_trains_in_both_engines(tmp_path):
    base = dict(k=3, dataset="grid25", rounds=20, eval_every=10, eval_samples=300, batch_size=32, hidden=16, seed=5)
    seq = train(TrainConfig(engine="sequential", out=str(tmp_path / "seq"), **base))
    par = train(TrainConfig(engine="parallel", out=str(tmp_path / "par"), **base))
    data = read_run_file(par.run_dir / "run.h5")
    assert data["data/centers"].shape == (25, 2) and data["eval/generator_table"].shape == (2, 3, 26)
    assert np.isfinite(data["loss/generator"]).all() and np.isfinite(data["loss/classifier"]).all()
    assert _max_difference(seq.run_dir, par.run_dir, TrainConfig(**base).roles) <= 1e-6


OPTION_SETS = {
    "ns+label-smoothing+historical-averaging": dict(generator_loss="ns", label_smoothing=0.9,
                                                    historical_averaging=0.01),
    "softmax+feature-matching+minibatch": dict(k=3, classifier="softmax", feature_matching="replace",
                                               minibatch_features=4, minibatch_kernel_dim=3),
    "one-vs-all+virtual-batch-norm+sdeconv": dict(k=3, classifier="one-vs-all", virtual_batch_norm=True,
                                                  generator="sdeconv"),
    "pairwise+feature-matching-added": dict(k=3, classifier="pairwise", feature_matching="add"),
    "hinge+spectral-norm+r1+ema": dict(generator_loss="hinge", spectral_norm="both", r1=0.5, r1_every=3, ema=0.9),
    "classifier-negatives": dict(k=3, classifier_negatives=21),  # 10 and 11 of the other slots' 32 rows
    # bf16 autocast: the same steps in every engine, so still bit-equal; R1's double backward and
    # feature matching's second output pass through it
    "bf16+feature-matching+r1": dict(precision="bf16", feature_matching="add", r1=0.5),
    # bf16 slots: every engine reads the same rounded batches and gradients
    "bf16-slots": dict(k=3, slot_precision="bf16"),
}


@pytest.mark.parametrize("options", [*OPTION_SETS.values(),
                                     pytest.param(dict(generator_loss="minimax"), marks=pytest.mark.slow)],
                         ids=[*OPTION_SETS, "minimax"])
def test_objective_options_train_and_the_engines_agree(tmp_path, options):
    base = {**dict(k=2, rounds=20, eval_every=10, eval_samples=200, batch_size=32, hidden=16, seed=4), **options}
    runs = {e: train(TrainConfig(engine=e, out=str(tmp_path / e), **base)).run_dir for e in ("sequential", "parallel")}
    data = read_run_file(runs["parallel"] / "run.h5")
    for name in ("loss/generator", "loss/discriminator", "loss/classifier", "term/discriminator", "term/classifier"):
        assert np.isfinite(data[name]).all(), name
    assert _max_difference(runs["sequential"], runs["parallel"], TrainConfig(**base).roles) <= 1e-6
    plain = {key: getattr(TrainConfig(), key) for key in options if key != "k"}
    default = train(TrainConfig(engine="sequential", out=str(tmp_path / "default"), **{**base, **plain}))
    # the options change the math (bf16 slots least: after 20 rounds they move a loss by about 7e-5)
    assert _max_difference(default.run_dir, runs["sequential"], ["generator-0"]) > 1e-5
