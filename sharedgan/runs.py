"""A finished (or interrupted) run, read back from its directory: sample it, evaluate it."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import torch

from sharedgan.config import TrainConfig, require_consent
from sharedgan.errors import ConfigError
from sharedgan.eval.coverage import MIN_ACCURACY, class_coverage, classifier_for, realness_judge
from sharedgan.eval.modes import ModeReport, mode_report
from sharedgan.eval.spread import generator_spread, reference_spread
from sharedgan.math.seeding import stream
from sharedgan.roles.build import dataset_of, make_model, model_spec
from sharedgan.roles.generator import averaged_weights, prior_noise
from sharedgan.storage import checkpoint
from sharedgan.storage.files import user_cache

log = logging.getLogger("sharedgan")


def _image_shape_of(config: TrainConfig, state: dict) -> tuple[int, int, int] | None:
    """The one image shape DCGAN supports whose generator ``state`` (a checkpoint's) fits, or None."""
    fits = []
    for shape in ((3, 32, 32), (1, 32, 32), (3, 64, 64), (1, 64, 64)):
        try:
            make_model(config, "generator", model_spec(config, sample_shape=shape)).load_state_dict(
                averaged_weights(state))
            fits.append(shape)
        except (RuntimeError, KeyError, ValueError):  # (a user's model may not take the shape at all)
            continue
    return fits[0] if len(fits) == 1 else None


class Run:
    """A finished (or interrupted) run: its config and its latest complete checkpoint. Its data set
    is opened only for what compares samples with real data (evaluate, coverage, spread, IS/FID)."""

    @functools.cached_property
    def dataset(self):
        return dataset_of(self.config, build=False)  # reading a run writes nothing where it says

    def __init__(self, run_dir: Path, trust: bool = False, at_round: int | None = None):
        """``at_round``: the checkpoint after that round (1-based, as the run's messages count),
        instead of the newest."""
        self.run_dir = Path(run_dir)
        config_path = self.run_dir / "config.json"
        if not config_path.is_file():
            raise ConfigError(f"{self.run_dir} is not a sharedgan run (no config.json); pass a run directory")
        self.config = TrainConfig.from_file(config_path, run=True)
        # a run directory may come from anywhere: its settings are checked as strictly as a
        # launch's, and a model factory of its own is imported only with consent
        require_consent(self.config, str(config_path), trust=trust)
        self.config.validate(reading=True)
        self.checkpoint, manifest, states = self._newest() if at_round is None else self._at(at_round)
        self.round = manifest["round"]
        # the manifest says the sample shape, so that sampling needs nothing but the run directory
        # (runs made before it did: the image shape the generator's weights fit, else the data set)
        shape = manifest.get("sample_shape")
        valid = (isinstance(shape, list) and 0 < len(shape) <= 4
                 and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 4096 for v in shape))
        self.sample_shape = (tuple(shape) if valid else
                             (self.config.images and _image_shape_of(self.config, states[0])) or
                             tuple(self.dataset.sample_shape))
        spec = model_spec(self.config, sample_shape=self.sample_shape)
        self._last_draw = None
        self.generators = []
        for k in range(self.config.k):
            net = make_model(self.config, "generator", spec, k)
            try:
                net.load_state_dict(averaged_weights(states[k]))  # --ema: the moving average
            except (RuntimeError, KeyError) as exc:
                raise ConfigError(f"checkpoint {self.checkpoint} does not fit this run's generator "
                                  f"({str(exc).splitlines()[0]}); use the sharedgan and models that made it") from None
            net.eval()
            self.generators.append(net)

    def _at(self, at_round: int) -> tuple[Path, dict, list[dict]]:
        kept = checkpoint.complete_checkpoints(self.run_dir)
        folder = next((f for f in kept if checkpoint.round_of(f) + 1 == at_round), None)
        if folder is None:
            rounds = ", ".join(str(checkpoint.round_of(f) + 1) for f in kept) or "none"
            raise ConfigError(f"{self.run_dir} keeps no checkpoint of round {at_round}; it keeps rounds {rounds}")
        try:
            manifest = checkpoint.read_manifest(folder)
            return folder, manifest, [checkpoint.load_role(folder, f"generator-{k}") for k in range(self.config.k)]
        except checkpoint.CheckpointError as exc:
            raise ConfigError(f"the checkpoint of round {at_round} cannot be read: {exc}") from None

    def _newest(self) -> tuple[Path, dict, list[dict]]:
        """The newest intact checkpoint, its manifest and every generator's state, read at once. A
        run still training prunes old checkpoints: one that vanishes while it is read is passed
        over for the newer one."""
        for _ in range(5):
            skipped: list[str] = []
            newest = checkpoint.latest_with_manifest(self.run_dir, skipped)
            if newest is None:
                why = f" ({skipped[0]})" if skipped else ""
                raise ConfigError(f"{self.run_dir} has no intact checkpoint to sample from{why}")
            found, manifest = newest
            try:
                return found, manifest, [checkpoint.load_role(found, f"generator-{k}") for k in range(self.config.k)]
            except checkpoint.CheckpointError:
                kept = checkpoint.complete_checkpoints(self.run_dir)
                if kept and kept[-1] == found:  # still the newest: damaged, not pruned
                    raise
        raise ConfigError(f"{self.run_dir}'s checkpoints vanish faster than they can be read; try again")

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """n samples of the mixture: each picks its generator uniformly. Returns (samples, generator).
        The last draw is kept: coverage and IS/FID of one eval judge the same samples, drawn once."""
        if self._last_draw is not None and self._last_draw[0] == (n, seed):
            return self._last_draw[1]
        which = torch.randint(self.config.k, (n,), generator=stream(seed, "sample-mixture"))
        z = prior_noise(n, self.config.noise_dim, self.config.noise, stream(seed, "sample-noise"))
        out = torch.empty((n, *self.sample_shape))
        for k, net in enumerate(self.generators):
            idx = (which == k).nonzero().flatten()
            if len(idx):
                out[idx] = net(z[idx])
        self._last_draw = ((n, seed), (out, which))
        return out, which

    def evaluate(self, n: int = 2500, seed: int = 0) -> ModeReport:
        if self.config.images:
            raise ConfigError(f"{self.run_dir} is an image run: mode coverage is for 2-D runs; "
                              "look at its samples.png, or draw more with 'sharedgan sample --png'")
        samples, which = self.sample(n, seed)
        return mode_report(samples, which, self.dataset.centers, self.dataset.std, self.config.k)

    def class_coverage(self, n: int = 2500, seed: int = 0, epochs: int = 10, min_accuracy: float = MIN_ACCURACY,
                       on_step=None):
        """Class coverage of n fresh samples (image runs on labelled data), judged by the data
        set's cached classifier (trained first if missing; ``on_step(done, total)`` reports it)."""
        if not self.config.images:
            raise ConfigError(f"{self.run_dir} is a 2-D run: class coverage is for image runs; use evaluate()")
        classifier = self._classifier(epochs, on_step)
        samples, which = self.sample(n, seed)
        return class_coverage(classifier, samples, which, self.config.k, min_accuracy)

    def realness(self, n: int = 2500, seed: int = 0, epochs: int = 10, min_accuracy: float = MIN_ACCURACY,
                 on_step=None):
        """Precision, recall, density and coverage of each generator and of the mixture among n
        fresh samples (``eval.realness``), in the features of the classifier ``class_coverage``
        uses, next to those of held-out real images."""
        if not self.config.images:
            raise ConfigError(f"{self.run_dir} is a 2-D run: realness is for image runs; use evaluate()")
        classifier = self._classifier(epochs, on_step)
        judge = realness_judge(classifier, self.dataset.data, min_accuracy)
        samples, which = self.sample(n, seed)
        return judge.report(samples, which, self.config.k)

    def _classifier(self, epochs: int, on_step):
        """The data set's coverage classifier: a launch's, beside the data cache, or one trained now
        and kept in the user's cache (reading a run writes nothing where the run says)."""
        return classifier_for(self.dataset.data, epochs, on_step=on_step, cache_folder=user_cache() / "classifiers")[0]

    def spread(self, n: int = 2500, seed: int = 0) -> np.ndarray:
        """Each generator's spread among n fresh samples drawn with ``seed`` ([K], see ``eval.spread``):
        near 0 for a generator that draws one picture whatever its noise. The real images it is
        measured against are those of the evaluations during training (the run's own seed)."""
        if not self.config.images:
            raise ConfigError(f"{self.run_dir} is a 2-D run: spread is for image runs; use evaluate()")
        samples, which = self.sample(n, seed)
        reference = reference_spread(self.dataset.data.images, self.config.seed)
        return generator_spread(samples, which, self.config.k, reference)

    def inception(self, n: int = 2500, seed: int = 0, weights_path: str | None = None, device: str = "cpu"):
        """IS and FID (torch-fidelity) of n fresh samples: the mixture and each generator alone."""
        from sharedgan.data.images import real_subset, to_uint8
        from sharedgan.eval.fidelity import inception_metrics
        if not self.config.images:
            raise ConfigError(f"{self.run_dir} is a 2-D run: Inception score and FID are for image runs")
        samples, which = self.sample(n, seed)
        data = self.dataset.data
        real = real_subset(data.images, n, seed, "fid-real")
        key = f"{data.name}-{data.source_id[:16]}-{len(real)}-{seed}"
        return inception_metrics(to_uint8(samples), which.numpy(), self.config.k, real, key,
                                 user_cache() / "fidelity", weights_path, device), len(real)


def load_run(run_dir: str | Path, trust: bool = False, at_round: int | None = None) -> Run:
    """The run in ``run_dir`` at its newest checkpoint, or at that of ``at_round`` (1-based);
    ``trust``: its config may name model factories sharedgan does not ship (they are imported and
    called to build its generators)."""
    return Run(Path(run_dir), trust, at_round)

