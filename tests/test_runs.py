"""Reading a run back: a checkpoint pruned while it is read is passed over for the newer one."""
import shutil
from pathlib import Path

from sharedgan import load_run
from sharedgan.storage import checkpoint

FIXTURE = Path(__file__).parent / "fixtures" / "legacy-run-0.1"


def test_sample_passes_over_a_checkpoint_pruned_while_it_is_read(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    real_load, calls = checkpoint.load_role, []

    def load_while_training_prunes(folder, role):
        calls.append(folder.name)
        if folder.name == "round-0000039" and len(calls) == 2:  # pruned between two files of it
            shutil.rmtree(folder)
        return real_load(folder, role)

    monkeypatch.setattr(checkpoint, "load_role", load_while_training_prunes)
    run = load_run(run_dir)
    assert run.round == 19 and run.checkpoint.name == "round-0000019"
    assert calls[:2] == ["round-0000039", "round-0000039"] and calls[2:] == ["round-0000019", "round-0000019"]
    samples, _ = run.sample(8)
    assert samples.shape == (8, 2)
