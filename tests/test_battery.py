"""The bad-input battery: every case gets one line on stderr, the documented exit code (2 for bad
input, 1 for a failure during the run), no traceback, and leaves what the user had untouched."""
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.cli import cli, cli_here, one_line
from helpers.data_files import cifar_archive, cifar_folder, mnist_files
from helpers.launch import FIXTURES, TINY

pytestmark = pytest.mark.processes  # every test here starts processes (see pytest.ini)

RUN_ARGS = TINY + ["--rounds", "40", "--eval-every", "20", "--checkpoint-every", "20", "--engine", "sequential"]


def tree(folder: Path) -> dict:
    """Every file under ``folder`` with its content hash: 'nothing changed' means equal trees."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("battery") / "run"
    res = cli("launch", "--out", str(out), *RUN_ARGS)
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture
def run_copy(finished, tmp_path):
    """A run stopped after its first checkpoint (round 19), safe to damage."""
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    shutil.rmtree(out / "checkpoints" / "round-0000039")
    return out


OPTIONS = [  # malformed option values: refused before anything is written
    (["--k", "0"], "--k must be"),
    (["--k", "abc"], "'abc' is not a valid integer"),
    (["--k", "2.5"], "'2.5' is not a valid integer"),
    (["--dataset", "cifar11"], "cifar11"),
    (["--batch-size", "0"], "--batch-size must be"),
    (["--threshold", "1.5"], "--threshold"),
    (["--lr", "-1"], "--lr-generator must be > 0"),
    (["--lr", "inf"], "--lr-generator must be > 0, got inf"),
    (["--beta-schedule", "cosine"], "cosine"),
    (["--rounds", "0"], "--rounds must be"),
    (["--device", "tpu"], "--device"),
    (["--device", "cuda:x"], "is not a device; use cpu, cuda or cuda:N"),
    (["--generator-loss", "wasserstein"], "'wasserstein' is not one of 'pgan', 'ns', 'minimax', 'hinge'"),
    (["--generator-loss", "hinge", "--label-smoothing", "0.9"], "brings D's hinge loss, which has no label smoothing"),
    (["--spectral-norm", "generator"], "'generator' is not one of 'off', 'discriminator', 'both'"),
    (["--r1", "-1"], "--r1 is a weight γ ≥ 0"),
    (["--r1", "inf"], "--r1 must be a finite number, got inf"),
    (["--augment", "translation,blur"], "--augment is off or a comma list of color, translation, cutout"),
    (["--r1-every", "0"], "--r1-every must be an integer ≥ 1"),
    (["--ema", "1"], "--ema is a decay in [0, 1)"),
    (["--ema", "0.99", "--share-generator-body"], "--ema keeps an average of each generator's own weights"),
    (["--augment", "translation"], "--augment transforms images"),
    (["--realness", "maybe"], "'maybe' is not one of 'auto', 'off'"),
    (["--label-smoothing", "0.3"], "--label-smoothing is D's real target α in (0.5, 1]"),
    (["--historical-averaging", "-1"], "--historical-averaging is a weight λ ≥ 0"),
    (["--classifier", "two-vs-all"], "'two-vs-all' is not one of 'ovr', 'softmax', 'one-vs-all', 'pairwise'"),
    (["--minibatch-features", "-1"], "--minibatch-features is B"),
    (["--bank", "0"], "--bank must be an integer ≥ 1"),
    (["--generator", "sdeconv", "--generator-factory", "user_models:wide_generator"],
     "--generator sdeconv is the built-in"),
    (["--shared-trunk", "--engine", "async"], "--shared-trunk works with --engine sequential, batched or parallel"),
    (["--share-generator-body", "--virtual-batch-norm"], "--share-generator-body works with the standard generator"),
    (["--feature-matching", "add", "--discriminator-factory", "user_models:plain_discriminator"],
     "needs a discriminator with forward_features"),
    (["--devices", "generators=cpu"], "is not ROLE:DEVICE[,DEVICE...]"),
    (["--devices", "decoder:cpu"], "is not ROLE:DEVICE[,DEVICE...]"),
    (["--devices", "classifier:cpu;classifier:cpu"], "--devices names classifier twice"),
    (["--seed", "-1"], "--seed must be"),
    (["--heartbeat-timeout", "0"], "--heartbeat-timeout must be a number of seconds > 0"),
    (["--signal-timeout", "nan"], "--signal-timeout must be a number of seconds > 0"),
    (["--on-failure", "maybe"], "'maybe' is not one of 'stop', 'respawn'"),
    (["--max-restarts", "-1"], "--max-restarts must be an integer ≥ 0"),
    (["--mode-std", "-1"], "--mode-std must be > 0"),
    (["--adam-beta1", "1"], "--adam-beta1/--adam-beta2 must lie in [0, 1)"),
    (["--beta0", "-1"], "--beta0 must be ≥ 0"),
    (["--generator-factory", "no_such_module:make"], "cannot import module 'no_such_module'"),
    (["--generator-factory", "user_models:missing"], "has no 'missing'"),
    (["--generator-factory", "nocolon"], "package.module:function"),
    (["--bogus-option"], "No such option"),
    (["--config", "/nonexistent/config.json"], "cannot read config"),
]


@pytest.mark.parametrize("args, says", OPTIONS, ids=[" ".join(a) for a, _ in OPTIONS])
def test_bad_option(tmp_path, capsys, monkeypatch, args, says):
    monkeypatch.syspath_prepend(FIXTURES)
    one_line(cli_here(capsys, "launch", "--out", str(tmp_path / "r"), *args), 2, says)
    assert not (tmp_path / "r").exists()  # nothing was written


CONFIGS = [
    ("{not json", "not valid JSON"),
    ('{"k": "3"}', "config key 'k' must be int, got '3'"),
    ('{"k": 2, "learning_rate": 1}', "unknown config keys: learning_rate"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"threshold": "high"}', "config key 'threshold' must be float, got 'high'"),
]


@pytest.mark.parametrize("text, says", CONFIGS)
def test_bad_config_file(tmp_path, capsys, text, says):
    path = tmp_path / "c.json"
    path.write_text(text)
    one_line(cli_here(capsys, "launch", "--config", str(path), "--out", str(tmp_path / "r")), 2, says)
    assert path.read_text() == text and not (tmp_path / "r").exists()


def test_config_path_is_a_directory(tmp_path, capsys):
    one_line(cli_here(capsys, "launch", "--config", str(tmp_path), "--out", str(tmp_path / "r")), 2,
             "cannot read config")


def test_out_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    one_line(cli("launch", "--out", str(tmp_path / "file" / "run"), *RUN_ARGS), 2, "cannot write to --out")
    assert (tmp_path / "file").read_text() == "x"


def test_unwritable_directory(tmp_path):
    if os.geteuid() == 0:  # root ignores a directory's mode; sysfs refuses it a new directory all the same
        target = Path("/sys/sharedgan-unwritable/run")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        target = locked / "run"
    one_line(cli("launch", "--out", str(target), *RUN_ARGS), 2, f"cannot write to --out {target}")
    assert not target.parent.exists() or list(target.parent.iterdir()) == []


RESUMES = [  # (how the run is damaged or what is asked, what the error says)
    (lambda r: None, ["--k", "3"], "--k cannot change when resuming (the run has 2)"),
    (lambda r: None, ["--lr", "0.1"], "--lr-generator cannot change when resuming"),
    (lambda r: None, ["--config", "x.json"], "--resume takes the run's own config.json"),
    (lambda r: None, ["--out", "/tmp/elsewhere"], "--resume continues in"),
    (lambda r: shutil.rmtree(r / "checkpoints"), [], "has no intact checkpoint to resume from"),
    (lambda r: _flip_byte(r / "checkpoints" / "round-0000019" / "discriminator.pt"), [],
     "does not match its checksum"),
    (lambda r: _truncate(r / "checkpoints" / "round-0000019" / "generator-1.pt"), [], "does not match its checksum"),
    (lambda r: (r / "checkpoints" / "round-0000019" / "manifest.json").write_text("{"), [], "has no readable manifest"),
    (lambda r: _edit_config(r, hidden=32), [], "was made with --hidden 16, this run has 32"),
    (lambda r: _edit_config(r, k=3), [], "was made with --k 2, this run has 3"),
    (lambda r: _edit_config(r, dataset="grid25"), [], "was made with --dataset 'ring8', this run has 'grid25'"),
    (lambda r: _edit_config(r, generator_factory="user_models:wide_generator"), ["--trust-run"],
     "was made with --generator-factory"),
    (lambda r: _forge_fingerprint(r, generator_factory="user_models:wide_generator"), ["--trust-run"],
     "does not fit this run's models"),
    # a manifest whose fields are of the wrong type or out of range is a damaged one
    (lambda r: _edit_manifest(r, train_seconds=float("inf")), [], "has no readable manifest"),
    (lambda r: _edit_manifest(r, round=19.0), [], "has no readable manifest"),
    (lambda r: _edit_manifest(r, roles=["../../elsewhere"]), [], "has no readable manifest"),
    (lambda r: _edit_manifest(r, sha256=["not", "a", "dict"]), [], "has no readable manifest"),
    (lambda r: _edit_manifest(r, fingerprint="k=2"), [], "has no readable manifest"),
    (lambda r: (r / "config.json").unlink(), [], "is not a sharedgan run (no config.json)"),
]


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100])


def _edit_config(run, **changes):
    config = json.loads((run / "config.json").read_text())
    config.update(changes)
    (run / "config.json").write_text(json.dumps(config))


def _edit_manifest(run, **changes):
    path = run / "checkpoints" / "round-0000019" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def _forge_fingerprint(run, **changes):
    """A config whose models differ from the checkpoint's, with a manifest that claims they match."""
    _edit_config(run, **changes)
    manifest_path = run / "checkpoints" / "round-0000019" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["fingerprint"].update(changes)
    manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("damage, args, says", RESUMES, ids=[s[:40] for _, _, s in RESUMES])
def test_bad_resume(run_copy, damage, args, says):
    damage(run_copy)
    before = tree(run_copy)
    one_line(cli("launch", "--resume", str(run_copy), *args), 2, says)
    assert tree(run_copy) == before


def test_resume_of_a_finished_run(finished):
    before = tree(finished)
    one_line(cli("launch", "--resume", str(finished)), 2, "already finished its 40 rounds")
    assert tree(finished) == before


def test_resume_of_a_missing_directory(tmp_path):
    one_line(cli("launch", "--resume", str(tmp_path / "nothing")), 2, "is not a sharedgan run")


@pytest.mark.parametrize("args, says", [
    (["--n", "0"], "0 is not in the range 1<=x<=10000000"),
    (["--out", "/nonexistent/dir/s.h5"], "cannot write /nonexistent/dir/s.h5"),
])
def test_bad_sample(finished, args, says):
    one_line(cli("sample", str(finished), *(args if "--out" in args else args + ["--out", "/tmp/unused.h5"])),
             2, says)


def test_sample_when_every_checkpoint_is_damaged(run_copy, tmp_path):
    _flip_byte(run_copy / "checkpoints" / "round-0000019" / "generator-0.pt")
    one_line(cli("eval", str(run_copy)), 2, "has no intact checkpoint")


def _file_size_limit(nbytes):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))  # a real EFBIG on every write past it
    return apply


@pytest.mark.parametrize("engine", ["sequential", "parallel"])
def test_full_disk_while_writing_a_checkpoint(tmp_path, leak_check, engine):
    # 256-wide models make every checkpoint file larger than the 200 kB the process may write
    res = cli("launch", "--out", str(tmp_path / "r"), *TINY, "--rounds", "40", "--hidden", "256",
              "--checkpoint-every", "20", "--engine", engine, preexec=_file_size_limit(200_000))
    one_line(res, 1, "could not write its checkpoint of round 19: File too large")
    assert not list((tmp_path / "r" / "checkpoints").rglob("*.tmp"))


def test_full_disk_while_writing_the_run_file(tmp_path, leak_check):
    # 20,000 evaluation samples make run.h5 larger than the limit; checkpoints stay small
    res = cli("launch", "--out", str(tmp_path / "r"), *TINY, "--rounds", "40", "--eval-samples", "20000",
              "--eval-every", "20", "--checkpoint-every", "20", "--engine", "sequential",
              preexec=_file_size_limit(200_000))
    one_line(res, 1, "File too large")
    assert not list((tmp_path / "r").glob(".run.h5.*tmp"))


DATA = [  # (how the data directory is made, the data set, what the error says)
    (lambda d: None, "cifar10", "CIFAR-10 not found in"),
    (lambda d: _truncate_file(cifar_folder(d) / "data_batch_1"), "cifar10", "is not a CIFAR-10 batch"),
    (lambda d: cifar_archive(d), "cifar10", "not the published c58f30108f718f92721af3b95e74349a"),
    (lambda d: mnist_files(d, n=4, gz=False, labels_for=3), "mnist", "4 images but 3 labels"),
    (lambda d: np.save(d / "mine.npy", np.zeros((3, 8, 8, 3), np.float64)), "mine.npy", "images must be uint8"),
    (lambda d: np.save(d / "mine.npy", np.zeros((3, 8, 8, 5), np.uint8)), "mine.npy", "C = 1 or 3"),
    (lambda d: np.save(d / "mine.npy", np.uint8(7)), "mine.npy", "got a scalar"),
    (lambda d: np.savez(d / "mine.npz", images=np.zeros((3, 8, 8, 1), np.uint8), labels=np.array([0, 10**12, 1])),
     "mine.npz", "labels go up to 1000000000000"),
    (lambda d: np.savez(d / "mine.npz", images=np.zeros((3, 8, 8, 1), np.uint8), labels=np.zeros((3, 2), np.int64)),
     "mine.npz", "labels must be integers, one per image"),
    (lambda d: _h5_with_groups(d / "mine.h5"), "mine.h5", "has no 'images' dataset"),
    (lambda d: _huge_image_folder(d / "pics"), "pics", "refused before they are decoded"),
]


def _h5_with_groups(path):
    import h5py
    with h5py.File(path, "w") as f:
        f.create_group("images")


def _huge_image_folder(folder):
    """A PNG whose header claims 20000 × 20000 pixels (a few KiB on disk, 400 MB decoded)."""
    from PIL import Image
    folder.mkdir()
    Image.new("L", (20000, 20000)).save(folder / "bomb.png", optimize=True)


def _truncate_file(path):
    path.write_bytes(path.read_bytes()[:300])


@pytest.mark.parametrize("make, name, says", DATA, ids=[s[:30] for _, _, s in DATA])
def test_bad_data(tmp_path, make, name, says):
    make(tmp_path)
    target = name if name in ("cifar10", "mnist") else str(tmp_path / name)
    before = tree(tmp_path)
    one_line(cli("data", target, "--data-dir", str(tmp_path), "--no-download"), 2, says)
    assert tree(tmp_path) == before  # nothing half-written into the cache


def test_data_command_builds_the_cache_and_a_picture(tmp_path):
    cifar_folder(tmp_path, n=8)
    res = cli("data", "cifar10", "--data-dir", str(tmp_path), "--png", str(tmp_path / "grid.png"))
    assert res.returncode == 0, res.stderr
    assert "cifar10: 40 images 32×32×3 uint8, 8 held out" in res.stdout and "airplane" in res.stdout
    assert (tmp_path / "cache" / "cifar10.h5").exists() and (tmp_path / "grid.png").stat().st_size > 0


# ---- a run directory from elsewhere is untrusted input ------------------------------------------
PLANTED = """import pathlib
pathlib.Path(__file__).with_name("IMPORTED").write_text("the run's own code ran")
from user_models import wide_generator as generator
"""


def _plant(run):
    """A run whose config names a factory of its own, in a module placed in the run directory."""
    (run / "planted.py").write_text(PLANTED)
    _edit_config(run, generator_factory="planted:generator")


@pytest.mark.parametrize("command", [
    ["sample", "{run}", "--out", "{tmp}/s.h5"],
    ["eval", "{run}"],
    ["launch", "--resume", "{run}"],
    ["launch", "--config", "{run}/config.json", "--out", "{tmp}/again"],
], ids=["sample", "eval", "resume", "config"])
def test_a_run_s_own_code_runs_only_with_consent(run_copy, tmp_path, command):
    _plant(run_copy)
    before = tree(run_copy)
    args = [a.format(run=run_copy, tmp=tmp_path) for a in command]
    res = cli(*args, cwd=run_copy)  # run from inside the run directory: its module is importable
    one_line(res, 2, "names the model factory 'planted:generator' (--generator-factory)")
    assert "--trust-run" in res.stderr
    assert not (run_copy / "IMPORTED").exists() and tree(run_copy) == before
    assert not (tmp_path / "s.h5").exists() and not (tmp_path / "again").exists()


def test_consent_is_trust_run_or_the_same_factory_given(run_copy, tmp_path):
    _plant(run_copy)
    res = cli("sample", str(run_copy), "--out", str(tmp_path / "s.h5"), "--trust-run", cwd=run_copy)
    assert (run_copy / "IMPORTED").exists()  # consent given: imported (its model then fits, or says why not)
    assert res.returncode in (0, 2) and "Traceback" not in res.stderr
    (run_copy / "IMPORTED").unlink()
    res = cli("launch", "--config", str(run_copy / "config.json"), "--out", str(tmp_path / "again"),
              "--generator-factory", "planted:generator", "--rounds", "2", cwd=run_copy)
    assert res.returncode == 0, res.stderr


def test_built_in_factories_need_no_consent_even_by_their_old_names(run_copy, tmp_path):
    _edit_config(run_copy, generator_factory="sharedgan.models:mlp_generator")
    res = cli("sample", str(run_copy), "--out", str(tmp_path / "s.h5"))
    assert res.returncode == 0, res.stderr


def _link_out(run, name, target):
    path = run / name
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    path.symlink_to(target)


@pytest.mark.parametrize("name", ["logs", "checkpoints", "logs/runner.log",
                                  "checkpoints/round-0000019/discriminator.pt", "run.h5", "grids",
                                  "tensorboard"])
def test_a_symbolic_link_in_a_run_never_makes_sharedgan_write_outside_it(run_copy, tmp_path, name):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("mine")
    target = outside if not name.endswith((".log", ".pt", ".h5")) else outside / "precious"
    _link_out(run_copy, name, target)
    before = tree(outside)
    one_line(cli("launch", "--resume", str(run_copy)), 2, "is a symbolic link")
    assert tree(outside) == before
    one_line(cli("launch", "--out", str(run_copy), "--force", *RUN_ARGS), 2, "is a symbolic link")
    assert tree(outside) == before
    assert (run_copy / "config.json").exists()  # --force checked everything before deleting anything


def test_the_write_probe_never_writes_through_a_link_planted_at_its_old_name(run_copy, tmp_path):
    (tmp_path / "precious").write_text("mine")
    (run_copy / ".write-test").symlink_to(tmp_path / "precious")  # the probe's fixed name before
    res = cli("launch", "--out", str(run_copy), "--force", *RUN_ARGS)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "precious").read_text() == "mine"


def test_a_checkpoint_copy_or_backup_beside_the_real_ones_is_passed_over(run_copy, tmp_path):
    shutil.copytree(run_copy / "checkpoints" / "round-0000019", run_copy / "checkpoints" / "round-0000019 (copy)")
    shutil.copytree(run_copy / "checkpoints" / "round-0000019", run_copy / "checkpoints" / "round-0000099.bak")
    res = cli("sample", str(run_copy), "--n", "10", "--out", str(tmp_path / "s.npz"))
    assert res.returncode == 0 and "from round 20" in res.stdout, res.stderr


@pytest.mark.parametrize("changes, says", [
    (dict(k=5000), "--k must be an integer in [1, 1024], got 5000"),
    (dict(eval_samples=-1), "--eval-samples must be an integer ≥ 1"),
    (dict(lr_generator=float("inf")), "--lr-generator must be > 0, got inf"),
    (dict(noise="laplace"), "--noise must be one of"),
])
def test_a_run_s_config_is_checked_like_the_command_line_before_sampling(run_copy, tmp_path, changes, says):
    _edit_config(run_copy, **changes)
    one_line(cli("sample", str(run_copy), "--out", str(tmp_path / "s.h5")), 2, says)
    assert not (tmp_path / "s.h5").exists()


def test_sample_replaces_a_symbolic_link_at_out_and_never_writes_through_it(finished, tmp_path, capsys):
    (tmp_path / "precious").write_text("mine")
    (tmp_path / "s.npz").symlink_to(tmp_path / "precious")
    res = cli_here(capsys, "sample", str(finished), "--n", "5", "--out", str(tmp_path / "s.npz"), "--force")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "precious").read_text() == "mine" and not (tmp_path / "s.npz").is_symlink()
    one_line(cli_here(capsys, "sample", str(finished), "--n", "1000000000", "--out", str(tmp_path / "x.h5")), 2,
             "is not in the range")


def test_compare_and_tensorboard_refuse_a_damaged_run_in_one_line(finished, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "run.h5").write_bytes(b"not hdf5")
    one_line(cli_here(capsys, "compare", str(run)), 2, "has no readable run.h5")
    one_line(cli_here(capsys, "tensorboard", str(run)), 2, "has no readable run.h5")
    shutil.copy(finished / "run.h5", run / "run.h5")
    (tmp_path / "elsewhere").mkdir()
    shutil.rmtree(run / "tensorboard", ignore_errors=True)
    (run / "tensorboard").symlink_to(tmp_path / "elsewhere")
    one_line(cli_here(capsys, "tensorboard", str(run)), 2, "is not a folder of this run's")
    (run / "config.json").write_text("[1, 2]")
    one_line(cli_here(capsys, "compare", str(run)), 2, "must hold a JSON object")


def test_a_long_tmpdir_does_not_break_a_parallel_launch(tmp_path, leak_check):
    deep = tmp_path / ("t" * 100)
    deep.mkdir()
    env_tmp = {"TMPDIR": str(deep)}
    res = subprocess.run([sys.executable, "-m", "sharedgan", "launch", "--out", str(tmp_path / "r"), *TINY,
                          "--rounds", "4", "--eval-every", "4"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **env_tmp})
    assert res.returncode == 0, res.stderr


def test_reading_an_image_run_writes_nowhere_its_config_says(tmp_path):
    """sample needs only the run directory; eval opens the data set's existing cache and refuses
    to build one where a run's config.json points."""
    import h5py
    with h5py.File(tmp_path / "mine.h5", "w") as f:
        f["images"] = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 1), dtype=np.uint8)
    run = tmp_path / "run"
    res = cli("launch", "--out", str(run), "--dataset", str(tmp_path / "mine.h5"), "--data-dir", str(tmp_path / "d"),
              "--k", "2", "--width", "4", "--rounds", "4", "--batch-size", "8", "--eval-every", "4", "--quiet",
              "--engine", "sequential")
    assert res.returncode == 0, res.stderr
    _edit_config(run, cache_dir=str(tmp_path / "somewhere" / "else"))
    res = cli("sample", str(run), "--n", "4", "--out", str(tmp_path / "s.npz"))
    assert res.returncode == 0, res.stderr
    one_line(cli("eval", str(run)), 2, "is missing or out of date; build it first with 'sharedgan data")
    assert not (tmp_path / "somewhere").exists()


@pytest.mark.parametrize("args, says", [
    (["--batch-size", "1000000000000"], "the slot buffer would take"),  # (petabytes: no machine has them)
    (["--beta0", "inf"], "--beta0 must be a finite number, got inf"),
    (["--ring-radius", "inf"], "--ring-radius must be a finite number"),
    (["--beta-tau", "nan"], "--beta-tau must be"),
])
def test_impossible_or_infinite_settings_are_refused_before_anything_is_written(tmp_path, capsys, args, says):
    one_line(cli_here(capsys, "launch", "--out", str(tmp_path / "r"), "--quiet", *args), 2, says)
    assert not (tmp_path / "r").exists()
