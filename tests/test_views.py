"""What users look at: the TensorBoard mirror (read back with TensorBoard's own reader and held
against run.h5), samples in formats other tools read, and runs compared side by side."""
import csv
import shutil

import h5py
import numpy as np
import pytest
from PIL import Image

from helpers.cli import cli_here, one_line
from sharedgan import TrainConfig, board, resume, train
from sharedgan.storage.runfile import read_run_file

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

TWO_D = dict(k=2, rounds=40, batch_size=32, hidden=16, eval_samples=200, eval_every=20, checkpoint_every=20,
             engine="sequential", beta_schedule="combined", seed=5)
IMAGES = dict(k=2, width=4, rounds=8, batch_size=8, eval_every=4, checkpoint_every=4, seed=3, engine="sequential")
PER_ROUND = ("loss/discriminator", "loss/classifier", "loss/generator", "beta", "term/discriminator",
             "term/classifier", "time/round", "time/generator/compute", "time/discriminator/wait")


def events(run_dir):
    ea = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    ea.Reload()
    return ea


def assert_mirrors(run_dir):
    """Every per-round series and evaluation metric of run.h5, tag by tag: the same steps, the
    same values (TensorBoard keeps float32)."""
    data, ea = read_run_file(run_dir / "run.h5"), events(run_dir)
    tags = set(ea.Tags()["scalars"])
    for name in PER_ROUND:
        values = data[name]
        for tag, k in board.scalar_tags(name, values):
            column = values if k is None else values[:, k]
            want = {n: v for n, v in enumerate(column) if np.isfinite(v)}
            got = {e.step: e.value for e in ea.Scalars(tag)} if tag in tags else {}
            assert sorted(got) == sorted(want), f"{tag}: steps {sorted(got)[:5]}… vs {sorted(want)[:5]}…"
            assert np.allclose([got[n] for n in want], np.float32(list(want.values())), rtol=1e-6), tag
    rounds = list(data["eval/round"])
    for key in ("high_quality", "modes_covered", "spread/0"):
        name = f"eval/{key}".split("/")
        source = data.get("/".join(name[:2]))
        if source is None:
            continue
        column = source if source.ndim == 1 else source[:, int(name[2])]
        got = {e.step: e.value for e in ea.Scalars(f"eval/{key}")}
        assert sorted(got) == rounds and np.allclose([got[n] for n in rounds], column.astype(np.float32))
    return data, ea


@pytest.fixture(scope="module")
def two_d_run(tmp_path_factory):
    return train(TrainConfig(out=str(tmp_path_factory.mktemp("views") / "run"), tensorboard="on", **TWO_D)).run_dir


def test_the_mirror_holds_what_run_h5_holds(two_d_run):
    data, ea = assert_mirrors(two_d_run)
    assert [e.step for e in ea.Images("eval/samples")] == list(data["eval/round"])  # the scatter, each evaluation
    from tensorboard.plugins.hparams import plugin_data_pb2
    start = ea.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    settings = plugin_data_pb2.HParamsPluginData.FromString(start).session_start_info.hparams
    assert settings["k"].number_value == 2 and settings["beta_schedule"].string_value == "combined"  # the settings


def test_a_resumed_run_shows_every_step_once(two_d_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(two_d_run, run_dir)
    shutil.rmtree(run_dir / "checkpoints" / "round-0000039")
    resume(run_dir, {"engine": "sequential"})
    assert len(list((run_dir / "tensorboard").iterdir())) == 2  # the first part's file and the resumed one's
    assert_mirrors(run_dir)  # (steps compared as sets of unique steps: a duplicate would differ in count)
    steps = [e.step for e in events(run_dir).Scalars("loss/generator/0")]
    assert steps == list(range(40))


def test_an_image_run_mirrors_its_grids_and_spread(tmp_path):
    with h5py.File(tmp_path / "mine.h5", "w") as f:
        f["images"] = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 1), dtype=np.uint8)
    run = train(TrainConfig(dataset=str(tmp_path / "mine.h5"), data_dir=str(tmp_path / "d"), out=str(tmp_path / "r"),
                            **IMAGES))
    data, ea = assert_mirrors(run.run_dir)
    grids = ea.Images("eval/samples")
    assert [g.step for g in grids] == list(data["eval/round"])
    K, g, H, W = data["eval/images"].shape[1:5]
    assert grids[0].height > K * H and grids[0].width > g * W  # one row per generator, padded


def test_without_tensorboard_training_goes_on_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(board, "available", lambda: False)
    result = train(TrainConfig(out=str(tmp_path / "run"), tensorboard="on", **{**TWO_D, "rounds": 10}))
    assert result.status == "complete" and not (result.run_dir / "tensorboard").exists()
    err = capsys.readouterr().err
    assert err.count(board.INSTALL_HINT) == 1
    one_line(cli_here(capsys, "tensorboard", str(result.run_dir)), 2, board.INSTALL_HINT)


def test_tensorboard_writes_the_events_of_a_run_made_without_them(tmp_path, capsys):
    run = train(TrainConfig(out=str(tmp_path / "run"), tensorboard="off", **TWO_D)).run_dir
    assert not (run / "tensorboard").exists()
    res = cli_here(capsys, "tensorboard", str(run))
    assert res.returncode == 0, res.stderr
    assert_mirrors(run)
    res = cli_here(capsys, "tensorboard", str(run))  # again: replaced, not appended
    assert res.returncode == 0 and len(list((run / "tensorboard").iterdir())) == 1
    assert_mirrors(run)


def test_sample_writes_formats_other_tools_read(two_d_run, tmp_path, capsys):
    res = cli_here(capsys, "sample", str(two_d_run), "--n", "50", "--out", str(tmp_path / "s.csv"))
    assert res.returncode == 0, res.stderr
    rows = list(csv.reader(open(tmp_path / "s.csv")))
    assert rows[0] == ["x", "y", "generator"] and len(rows) == 51 and {r[2] for r in rows[1:]} <= {"0", "1"}
    res = cli_here(capsys, "sample", str(two_d_run), "--n", "50", "--out", str(tmp_path / "s.npz"))
    with np.load(tmp_path / "s.npz") as d:
        assert d["samples"].shape == (50, 2) and d["generator"].shape == (50,)
        assert np.allclose(d["samples"][:, 0], [float(r[0]) for r in rows[1:]])  # the same draw, the same seed
    # a picture folder makes no sense for points: one line, nothing written
    one_line(cli_here(capsys, "sample", str(two_d_run), "--out", str(tmp_path / "pics"), "--format", "png"), 2,
             "2-D run")
    assert not (tmp_path / "pics").exists()
    one_line(cli_here(capsys, "sample", str(two_d_run), "--out", str(tmp_path / "s.csv")), 2, "exists")
    one_line(cli_here(capsys, "sample", str(two_d_run), "--out", str(tmp_path / "s.png")), 2, "pass --format png")
    (tmp_path / "mine.png").write_text("mine")
    one_line(cli_here(capsys, "sample", str(two_d_run), "--out", str(tmp_path / "t.npz"), "--png",
                      str(tmp_path / "mine.png")), 2, "choose another --png")
    assert (tmp_path / "mine.png").read_text() == "mine" and not (tmp_path / "t.npz").exists()


def test_sample_png_writes_one_image_per_sample(tmp_path, capsys):
    with h5py.File(tmp_path / "mine.h5", "w") as f:
        f["images"] = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    run = train(TrainConfig(dataset=str(tmp_path / "mine.h5"), data_dir=str(tmp_path / "d"), out=str(tmp_path / "r"),
                            tensorboard="off", **IMAGES)).run_dir
    out = tmp_path / "pics"
    res = cli_here(capsys, "sample", str(run), "--n", "20", "--out", str(out), "--format", "png")
    assert res.returncode == 0, res.stderr
    listing = list(csv.DictReader(open(out / "generators.csv")))
    assert len(listing) == 20 and len(list(out.glob("*.png"))) == 20
    for row in listing[:3]:
        with Image.open(out / row["file"]) as image:
            assert image.size == (32, 32) and image.mode == "RGB"
        assert row["file"].startswith(f"g{row['generator']}-")
    one_line(cli_here(capsys, "sample", str(run), "--out", str(tmp_path / "x.csv")), 2, "image run")
    res = cli_here(capsys, "sample", str(run), "--n", "5", "--out", str(out), "--format", "png", "--force")
    assert res.returncode == 0 and len(list(out.glob("*.png"))) == 5  # replaced whole
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pics.")]  # no staging folder left


def test_compare_prints_what_differs_and_draws_every_run(two_d_run, tmp_path, capsys):
    other = train(TrainConfig(out=str(tmp_path / "runs" / "b"), tensorboard="off", **{**TWO_D, "beta0": 1.0,
                                                                                     "seed": 6})).run_dir
    shutil.copytree(two_d_run, tmp_path / "runs" / "a")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    res = cli_here(capsys, "compare", str(tmp_path / "runs" / "a"), str(other))
    assert res.returncode == 0, res.stderr
    header = res.stdout.splitlines()[0]
    assert "beta0" in header and "seed" in header and "beta_schedule" not in header
    assert "| a |" in res.stdout and "| b |" in res.stdout and "/8" in res.stdout
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # it wrote nothing
    res = cli_here(capsys, "compare", str(tmp_path), "--out", str(tmp_path / "cmp"))  # a folder of runs
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "cmp" / "compare.md").read_text().count("\n| ") == 3  # header and two runs
    with Image.open(tmp_path / "cmp" / "compare.png") as picture:
        assert picture.size[0] > 1000
    one_line(cli_here(capsys, "compare", str(tmp_path / "cmp")), 2, "neither a sharedgan run")
