"""Comparing two runs bit for bit, and making a run look stopped after a given checkpoint."""
import shutil

import numpy as np
import torch

from sharedgan.storage import checkpoint
from sharedgan.storage.runfile import read_run_file

SERIES = ["loss/discriminator", "loss/classifier", "loss/generator", "beta", "term/discriminator", "term/classifier",
          "eval/samples", "eval/round"]


def assert_same_run(a_dir, b_dir, roles):
    a, b = read_run_file(a_dir / "run.h5"), read_run_file(b_dir / "run.h5")
    images = "eval/images" in a  # an image run keeps its evaluated pictures, a 2-D run its samples
    teacher = [s for s in ("loss/teacher", "loss/distiller", "term/teacher") if s in a]  # (HGAN's, when on)
    for name in [s for s in SERIES if s != "eval/samples"] + teacher + (["eval/images", "eval/spread"] if images
                                                                        else ["eval/samples"]):
        assert a[name].shape == b[name].shape, name
        assert np.array_equal(a[name], b[name], equal_nan=True), f"{name} differs"
    ca, cb = checkpoint.latest(a_dir), checkpoint.latest(b_dir)
    assert ca.name == cb.name
    for role in roles:
        sa, sb = (checkpoint.load_role(c, role) for c in (ca, cb))
        if "distiller" in sa:  # the teacher's D_T and the teacher batches it contrasts next
            assert torch.equal(sa["teacher_batch"], sb["teacher_batch"]), f"{role} teacher batch differs"
            for key in sa["distiller"]["model"]:
                assert torch.equal(sa["distiller"]["model"][key], sb["distiller"]["model"][key]), f"D_T {key} differs"
        for key in sa["model"]:
            assert torch.equal(sa["model"][key], sb["model"][key]), f"{role} {key} differs"
        for i, state in sa["optimizer"]["state"].items():
            assert torch.equal(state["exp_avg_sq"], sb["optimizer"]["state"][i]["exp_avg_sq"]), f"{role} Adam state"


def cut_back_to(run_dir, round_index):
    """Make ``run_dir`` look like a run stopped right after checkpoint ``round_index``."""
    for folder in checkpoint.complete_checkpoints(run_dir):
        if checkpoint.round_of(folder) > round_index:
            shutil.rmtree(folder)
