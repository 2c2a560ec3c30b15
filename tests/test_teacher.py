"""HGAN's teacher: its exact likelihood, the third validation region against hand-computed values,
its fixed (trained-before) form, the command that trains one, and the refusals."""
import math
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from helpers.cli import cli_here, one_line
from helpers.launch import TINY as LAUNCH_TINY
from helpers.runs import assert_same_run, cut_back_to
from sharedgan import TrainConfig, resume, train
from sharedgan.data.mixtures import GaussianMixture, ring
from sharedgan.errors import ConfigError
from sharedgan.math.losses import discriminator_loss
from sharedgan.math.seeding import stream
from sharedgan.models.mdn import AutoregressiveMDN, mdn_teacher
from sharedgan.roles.build import model_spec
from sharedgan.roles.teacher import TeacherRole
from sharedgan.runtime.buffer import SlotBuffer, fields_of
from sharedgan.storage import checkpoint
from sharedgan.storage.runfile import read_run_file

TINY = dict(k=2, batch_size=8, hidden=16, eval_samples=50, teacher_weight=1.0)


def _one_component(mu1, log_s1, mu2, log_s2) -> AutoregressiveMDN:
    """A one-component MDN whose x₂ ignores x₁: p(x) = N(x₁; μ₁, σ₁²) N(x₂; μ₂, σ₂²)."""
    net = AutoregressiveMDN(components=1, hidden=4)
    with torch.no_grad():
        net.first.copy_(torch.tensor([0.0, mu1, log_s1]))
        last = net.second[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.0, mu2, log_s2]))
    return net


def test_a_one_component_teacher_is_a_gaussian():
    net = _one_component(0.3, -1.0, -2.0, 0.5)
    x = torch.tensor([[0.0, 0.0], [0.3, -2.0], [1.5, 4.0]])
    # log N(x; μ, σ²) = −(x − μ)²/(2σ²) − log σ − ½ log 2π, by hand for each coordinate
    expected = [sum(-(xi - m) ** 2 / (2 * math.exp(2 * ls)) - ls - 0.5 * math.log(2 * math.pi)
                    for xi, m, ls in zip(row, (0.3, -2.0), (-1.0, 0.5))) for row in x.tolist()]
    assert torch.allclose(net.log_prob(x), torch.tensor(expected), atol=1e-5)
    samples = net.sample(40_000, stream(0, "t"))
    assert abs(samples[:, 0].mean() - 0.3) < 0.01 and abs(samples[:, 0].std() - math.exp(-1.0)) < 0.01
    assert abs(samples[:, 1].mean() + 2.0) < 0.03 and abs(samples[:, 1].std() - math.exp(0.5)) < 0.03
    assert torch.equal(net.sample(5, stream(0, "t")), net.sample(5, stream(0, "t")))


def test_the_true_mixture_density_by_hand():
    mix = GaussianMixture(torch.tensor([[0.0, 0.0], [3.0, 0.0]]), 0.5)
    x = torch.tensor([[0.0, 0.0], [1.5, 0.0]])
    n = lambda d2: math.exp(-d2 / (2 * 0.25)) / (2 * math.pi * 0.25)  # noqa: E731 - a 2-D Gaussian's density
    expected = [math.log(0.5 * n(0.0) + 0.5 * n(9.0)), math.log(0.5 * n(2.25) + 0.5 * n(2.25))]
    assert torch.allclose(mix.log_prob(x), torch.tensor(expected), atol=1e-6)


def test_maximum_likelihood_finds_every_ring_mode():
    """1500 Adam steps take a fresh MDN to within 1 nat of ring8's entropy, and its samples sit on
    all 8 modes: the teacher really is an explicit model of the data."""
    data = ring()
    net = mdn_teacher(16, 64, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for step in range(1500):
        loss = -net.log_prob(data.sample(256, stream(0, "r", step))).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    held = data.sample(5000, stream(1, "held"))
    with torch.no_grad():
        nll, floor = float(-net.log_prob(held).mean()), float(-data.log_prob(held).mean())
    assert nll < floor + 1.0, (nll, floor)
    nearest = torch.cdist(net.sample(4000, stream(2, "s")), data.centers).argmin(1)
    assert torch.bincount(nearest, minlength=8).min() > 4000 / 8 / 3


def _teacher_and_buffer(**settings):
    config = TrainConfig(**{**TINY, "engine": "sequential", **settings}).validate()
    spec = model_spec(config)
    buf = SlotBuffer.allocate(fields_of(config, spec.sample_shape), config.k, shared=False)
    role = TeacherRole(config, spec, ring())
    role.rejoin(buf, 0)
    buf.sample.copy_(torch.randn(buf.sample.shape, generator=stream(0, "x")) * 0.1)
    buf.sample_round.fill_(0)
    return config, role, buf


def test_the_distillers_term_and_step_by_hand():
    """D_T as d(x) = a·x + b: slot k's term is the pgan term mean(1 − d(x)) (no sample near D = t),
    so every row of its gradient is −a/m; D_T's step loss is −J^D with the teacher batch as real."""
    config, role, buf = _teacher_and_buffer()
    a, b = torch.tensor([0.5, -1.0]), 0.25
    line = nn.Linear(2, 1)
    with torch.no_grad():
        line.weight.copy_(a.reshape(1, 2))
        line.bias.fill_(b)
    role.distiller.net = line
    role.distiller.opt = torch.optim.SGD(line.parameters(), lr=0.0)  # (a step must not move the line under test)
    m = config.batch_size
    role.validate(buf, 1, 0)
    x = buf.sample[1]
    d = x @ a + b
    assert torch.allclose(buf.t_grad[1], (-a / m).expand(m, 2)) and int(buf.t_round[1]) == 0
    assert math.isclose(float(buf.t_term[1]), float((1 - d).mean()), rel_tol=1e-6)
    assert torch.allclose(buf.t_score[1], d) and int(buf.t_round[0]) == -1  # slot 0 not validated
    loss = role.update(1, 0)
    teacher_d = buf.t_sample[1] @ a + b
    by_hand = float(torch.nn.functional.softplus(-teacher_d).mean() + torch.nn.functional.softplus(d).mean())
    assert math.isclose(loss, by_hand, rel_tol=1e-6)
    assert math.isclose(by_hand, float(discriminator_loss(teacher_d, d)), rel_tol=1e-6)


def test_the_likelihood_term_is_the_teachers_exact_nll():
    config, role, buf = _teacher_and_buffer(teacher_term="likelihood")
    assert role.distiller is None
    role.validate(buf, 0, 0)
    x = buf.sample[0].clone().requires_grad_(True)
    nll = -role.net.log_prob(x).mean()
    nll.backward()
    assert torch.allclose(buf.t_grad[0], x.grad, atol=1e-7)
    assert math.isclose(float(buf.t_term[0]), nll.item(), rel_tol=1e-6)
    assert math.isnan(role.update(0, 0))  # no D_T to step


def test_teacher_batches_are_redrawn_every_n_rounds_and_only_then():
    config, role, buf = _teacher_and_buffer(teacher_sample_every=3)
    drawn = buf.t_sample.clone()
    role.end_round(buf, 0)  # round 1's batches: not due (1 % 3), the round-0 ones stay
    assert torch.equal(buf.t_sample, drawn)
    role.end_round(buf, 1)
    role.end_round(buf, 2)  # round 3's: due, from the teacher after three steps
    assert not torch.equal(buf.t_sample, drawn)


def test_the_generators_objective_adds_gamma_times_the_teacher_term(tmp_path):
    """J^{G_k} = D term + β_k C term + γ T term, every round, every generator (run.h5's series)."""
    res = train(TrainConfig(**{**TINY, "teacher_weight": 0.5}, rounds=6, eval_every=6, engine="sequential",
                            out=str(tmp_path / "run")))
    data = read_run_file(res.run_dir / "run.h5")
    by_hand = data["term/discriminator"] + data["beta"] * data["term/classifier"] + 0.5 * data["term/teacher"]
    assert np.allclose(data["loss/generator"], by_hand, rtol=1e-12, atol=0)
    assert np.isfinite(data["loss/teacher"]).all() and np.isfinite(data["loss/distiller"]).all()
    assert (np.abs(data["term/teacher"]) > 0).all() and np.isfinite(data["time/teacher/compute"]).all()


def test_gamma_weighs_the_teachers_gradient_in_each_generators_step(tmp_path):
    """The teacher's gradient reaches the generators, times γ: γ = 1 and γ = 2 share round 0's D
    step (D never sees γ) but not the generators' steps."""
    states = []
    for gamma in (1.0, 2.0):
        run = train(TrainConfig(**{**TINY, "teacher_weight": gamma}, rounds=1, eval_every=1, engine="sequential",
                                out=str(tmp_path / f"g{gamma}")))
        states.append({r: checkpoint.load_role(checkpoint.latest(run.run_dir), r)["model"]
                       for r in ("generator-0", "discriminator")})
    assert all(torch.equal(states[0]["discriminator"][key], v) for key, v in states[1]["discriminator"].items())
    assert not all(torch.equal(states[0]["generator-0"][key], v) for key, v in states[1]["generator-0"].items())


def test_a_teacher_trained_before_is_loaded_and_kept_fixed(tmp_path, capsys):
    t_file = tmp_path / "T.pt"
    res = cli_here(capsys, "teacher", "--dataset", "ring8", "--out", str(t_file), "--steps", "200",
                   "--width", "16", "--components", "4")
    assert res.returncode == 0 and "held-out NLL" in res.stdout and "the true mixture" in res.stdout, res
    saved = torch.load(t_file, weights_only=True)
    assert saved["unit"] == "nats" and saved["nll"] > -2.9  # (ring8's floor is −2.90 nats)
    run = train(TrainConfig(**TINY, rounds=4, eval_every=4, checkpoint_every=2, engine="sequential",
                            teacher=str(t_file), teacher_width=16, teacher_components=4, out=str(tmp_path / "run")))
    state = checkpoint.load_role(checkpoint.latest(run.run_dir), "teacher")
    assert all(torch.equal(state["model"][key], value) for key, value in saved["model"].items())
    # a resume takes the teacher from its checkpoint: the file may be gone by then
    cut_back_to(run.run_dir, 1)
    t_file.rename(tmp_path / "moved.pt")
    assert resume(run.run_dir).status == "complete"
    state = checkpoint.load_role(checkpoint.latest(run.run_dir), "teacher")
    assert all(torch.equal(state["model"][key], value) for key, value in saved["model"].items())
    (tmp_path / "moved.pt").rename(t_file)
    # and a file that is not there, not a teacher, or of another shape: one line, exit 2
    common = ["launch", "--k", "1", "--rounds", "2", "--teacher-weight", "1", "--out", str(tmp_path / "x")]
    one_line(cli_here(capsys, *common, "--teacher", str(tmp_path / "none.pt")), 2, "no such file")
    (tmp_path / "junk.pt").write_bytes(b"not a tensor file")
    one_line(cli_here(capsys, *common, "--teacher", str(tmp_path / "junk.pt")), 2, "is not a teacher file")
    one_line(cli_here(capsys, *common, "--teacher", str(t_file)), 2, "trained with --teacher-width 16")
    one_line(cli_here(capsys, *common, "--teacher", str(t_file), "--teacher-width", "16", "--teacher-components", "4",
                      "--dataset", "grid25"), 2, "was trained on ring8")
    assert not (tmp_path / "x").exists()
    one_line(cli_here(capsys, "teacher", "--out", str(t_file), "--steps", "1"), 2, "exists; pass --force")


@pytest.mark.parametrize("settings, says", [
    (dict(engine="async"), "--teacher-weight works with --engine sequential"),
    (dict(teacher="T.pt", teacher_weight=0.0), "give a weight too"),
    (dict(teacher_weight=-1.0), "--teacher-weight is a weight"),
    (dict(teacher_sample_every=0), "--teacher-sample-every must be an integer ≥ 1"),
])
def test_refusals(settings, says):
    with pytest.raises(ConfigError, match=says.replace("-", r"\-")):
        TrainConfig(**{**TINY, **settings}).validate()


def test_the_teachers_roles_and_regions():
    config = TrainConfig(**TINY).validate()
    assert config.roles[-1] == "teacher" and "teacher" in config.processes
    assert "t_grad" in fields_of(config, (2,)) and "t_grad" not in fields_of(TrainConfig(k=2).validate(), (2,))


# ---- the teacher as a process: the same numbers, resume, failures ---------------------------------
TEACHER_RUN = dict(k=2, rounds=12, batch_size=16, hidden=16, eval_samples=100, eval_every=6, checkpoint_every=4,
                   teacher_weight=1.0, teacher_sample_every=2, seed=5, beta_schedule="combined")


@pytest.mark.processes
@pytest.mark.parametrize("term", ["adversarial", pytest.param("likelihood", marks=pytest.mark.slow)])
def test_the_parallel_teacher_equals_the_sequential_one(tmp_path, leak_check, term):
    runs = [train(TrainConfig(**TEACHER_RUN, teacher_term=term, engine=engine, out=str(tmp_path / engine)))
            for engine in ("sequential", "parallel")]
    assert_same_run(runs[0].run_dir, runs[1].run_dir, TrainConfig(**TEACHER_RUN).roles)


@pytest.mark.processes
def test_a_resumed_teacher_run_equals_the_uninterrupted_one(tmp_path, leak_check):
    """Cut back to round 7 (between two teacher draws: the checkpoint's teacher batches are what
    round 6 contrasts), resume in the parallel engine: bit for bit the uninterrupted run."""
    ref = train(TrainConfig(**TEACHER_RUN, engine="sequential", out=str(tmp_path / "ref"))).run_dir
    shutil.copytree(ref, tmp_path / "run")
    cut_back_to(tmp_path / "run", 7)
    result = resume(tmp_path / "run", {"engine": "parallel"})
    assert result.status == "complete" and result.rounds_completed == 12
    assert_same_run(ref, tmp_path / "run", TrainConfig(**TEACHER_RUN).roles)


@pytest.mark.processes
def test_a_killed_teacher_is_named_and_respawned(launch, leak_check):
    args = [*LAUNCH_TINY, "--rounds", "40", "--checkpoint-every", "10", "--eval-every", "20", "--teacher-weight", "1",
            "--on-failure", "respawn"]
    job = launch(*args, env={"SHAREDGAN_FAULT": "teacher:validation-write:25"})
    code, out, err = job.finish(timeout=180)
    assert code == 0, err
    data = read_run_file(job.out / "run.h5")
    assert data["attrs"]["status"] == "complete" and "done: 40 rounds" in out
    (what,) = data["events/what"]
    assert data["events/role"] == ["teacher"]
    assert "teacher was killed by SIGKILL" in what and "restarted from checkpoint round-0000019" in what
    # the round it died in is the one the run abandoned; the teacher's term is back in every one after it
    assert np.isfinite(data["loss/teacher"][27:]).all() and np.isfinite(data["term/teacher"][27:]).all()
    assert (job.out / "logs" / "teacher.log").read_text().count(" started, pid ") == 2


@pytest.mark.parametrize("engines", [("sequential", "batched"),
                                     pytest.param(("sequential", "parallel"), marks=pytest.mark.slow)])
def test_an_image_teacher_is_a_pixelcnn(tmp_path, capsys, engines):
    """Digits-like 1 × 32 × 32 images: the PixelCNN teacher's NLL in bits/dim (an untrained one is
    near 8), its distiller's term in every generator's objective; the batched engine runs it (its
    D_T step on all K slots at once is no longer the sequential one's), the parallel engine equals
    the sequential one; and the teacher command trains one on the images' own held-out split."""
    from helpers.data_files import mnist_files
    mnist_files(tmp_path / "mnist", n=16, gz=False)
    image = dict(dataset="mnist", data_dir=str(tmp_path / "mnist"), k=2, width=4, rounds=4, batch_size=4,
                 eval_every=4, checkpoint_every=4, seed=3, teacher_weight=1.0, teacher_width=2,
                 teacher_sample_every=100)  # (one draw, at the start: a PixelCNN samples a pixel at a time)
    runs = [train(TrainConfig(**image, engine=engine, out=str(tmp_path / engine))).run_dir for engine in engines]
    if engines[1] == "parallel":
        assert_same_run(*runs, TrainConfig(**image).roles)
    for run in runs:
        data = read_run_file(run / "run.h5")
        assert 6.0 < data["loss/teacher"][0] < 9.0 and np.isfinite(data["term/teacher"]).all()
        assert np.isfinite(data["loss/distiller"]).all()
    res = cli_here(capsys, "teacher", "--dataset", "mnist", "--data-dir", str(tmp_path / "mnist"), "--steps", "3",
                   "--width", "2", "--batch-size", "4", "--out", str(tmp_path / "T.pt"))
    assert res.returncode == 0 and "bits/dim" in res.stdout, res


def test_an_image_teachers_pool_feeds_its_distiller_and_survives_a_resume(tmp_path, capsys, monkeypatch):
    """`sharedgan teacher --pool P` keeps P samples of the PixelCNN in its file (uint8 levels); a
    run holding that teacher fixed gives D_T batches picked from the pool, never sampling the
    PixelCNN, fresh every round; a resume needs no file (the pool is in the checkpoint) and equals
    the uninterrupted run; a pool of the wrong kind, or one asked of a 2-D teacher, is one line."""
    from helpers.data_files import mnist_files
    from sharedgan.models.pixelcnn import PixelCNN, to_levels
    mnist_files(tmp_path / "mnist", n=16, gz=False)
    t_file = tmp_path / "T.pt"
    res = cli_here(capsys, "teacher", "--dataset", "mnist", "--data-dir", str(tmp_path / "mnist"), "--steps", "2",
                   "--width", "2", "--batch-size", "4", "--pool", "6", "--out", str(t_file))
    assert res.returncode == 0 and "6 samples in its pool" in res.stdout, res
    pool = torch.load(t_file, weights_only=True)["pool"]
    assert pool.dtype == torch.uint8 and pool.shape == (6, 1, 32, 32) and len(pool.flatten(1).unique(dim=0)) > 1

    def no_sampling(*args, **kwargs):
        raise AssertionError("the PixelCNN sampled although the teacher file has a pool")
    monkeypatch.setattr(PixelCNN, "sample", no_sampling)
    image = dict(dataset="mnist", data_dir=str(tmp_path / "mnist"), k=2, width=4, rounds=6, batch_size=4,
                 eval_every=6, checkpoint_every=2, seed=3, teacher_weight=1.0, teacher_width=2, teacher=str(t_file),
                 engine="sequential")
    ref = train(TrainConfig(**image, out=str(tmp_path / "ref"))).run_dir
    batches = [checkpoint.load_role(c, "teacher")["teacher_batch"] for c in sorted((ref / "checkpoints").iterdir())]
    for batch in batches:  # every row of a teacher batch is a row of the pool
        rows = to_levels(batch).flatten(2).to(torch.uint8)
        assert all((rows[k, i] == pool.flatten(1)).all(1).any() for k in range(2) for i in range(4))
    assert not torch.equal(batches[0], batches[1])  # picked afresh (--teacher-sample-every 1)
    assert np.isnan(read_run_file(ref / "run.h5")["loss/teacher"]).all()  # a fixed teacher scores no batch
    shutil.copytree(ref, tmp_path / "run")
    cut_back_to(tmp_path / "run", 3)
    t_file.rename(tmp_path / "moved.pt")
    assert resume(tmp_path / "run").status == "complete"
    assert_same_run(ref, tmp_path / "run", TrainConfig(**image).roles)
    saved = torch.load(tmp_path / "moved.pt", weights_only=True)
    torch.save({**saved, "pool": saved["pool"].float()}, t_file)
    one_line(cli_here(capsys, "launch", "--dataset", "mnist", "--data-dir", str(tmp_path / "mnist"), "--k", "2",
                      "--width", "4", "--rounds", "2", "--teacher-weight", "1", "--teacher-width", "2", "--teacher",
                      str(t_file), "--out", str(tmp_path / "x")), 2, "its pool of teacher samples is not dense uint8")
    one_line(cli_here(capsys, "teacher", "--out", str(tmp_path / "T2.pt"), "--pool", "4"), 2,
             "a 2-D teacher draws its samples at once")


def test_a_pool_read_from_disk_is_checked_before_it_is_used(tmp_path):
    """A teacher file or checkpoint is untrusted: a saved view can claim a huge pool over one byte
    of storage, a pool can be sparse, or sit in a 2-D teacher's file; each is one line, not 41 GB
    or a traceback."""
    from sharedgan.storage.teacher_file import check_pool, read_teacher, save_teacher
    shape = (1, 32, 32)
    assert check_pool(torch.full((3, *shape), 255, dtype=torch.uint8), shape, "f").eq(255).all()
    for bad in (torch.zeros(1, dtype=torch.uint8).expand(10**7, *shape), torch.zeros(3, *shape).to(torch.uint8)[::2].
                transpose(2, 3), torch.zeros(2, *shape, dtype=torch.uint8).to_sparse(), torch.zeros(2, *shape)):
        with pytest.raises(ConfigError, match="its pool of teacher samples is not dense uint8 levels"):
            check_pool(bad, shape, "f")
    path = tmp_path / "T.pt"
    save_teacher(path, mdn_teacher(2, 4, 0), (2,), 4, 2, "ring8", 0.0, "nats")
    torch.save({**torch.load(path, weights_only=True), "pool": torch.zeros(3, 2, dtype=torch.uint8)}, path)
    with pytest.raises(ConfigError, match="only an image teacher has"):
        read_teacher(path, (2,), 4, 2)
