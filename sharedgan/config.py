"""The training configuration: one typed dataclass, validated at the edge.

``TrainConfig`` is what ``sharedgan launch`` builds from its options, what ``config.json`` in a
run directory holds (``--config`` reruns it), and what the Python API takes.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .beta_schedule import SCHEDULES, default_decay
from .data import DATASETS
from .losses import CLASSIFIERS

ENGINES = ("parallel", "sequential", "batched", "async")
REPLICA_SYNCS = ("copy", "hogwild")  # how the replicas of D and C stay in step (engine async)
LR_SCALINGS = ("sqrt", "none")  # the learning rate of an async D or C step on several slots
GENERATOR_LOSSES = ("pgan", "ns", "minimax")  # see losses.generator_d_term
OPTIMIZERS = ("adam", "sgd")
NOISE_PRIORS = ("normal", "uniform")
LR_DECAYS = ("none", "linear")
ON_FAILURE = ("stop", "respawn")
IMAGE_DATASETS = ("cifar10", "mnist")  # and your own: the path of an .h5, .npy, .npz or an image folder
MLP_FACTORIES = {role: f"sharedgan.models:mlp_{role}" for role in ("generator", "discriminator", "classifier")}
DCGAN_FACTORIES = {role: f"sharedgan.dcgan:{role}" for role in ("generator", "discriminator", "classifier")}
GENERATORS = ("standard", "sdeconv")  # --generator: the built-in generator (sdeconv: stochastic ensembling)
SDECONV_FACTORIES = {False: "sharedgan.models:sdeconv_mlp_generator", True: "sharedgan.dcgan:sdeconv_generator"}
FEATURE_MATCHING = ("off", "replace", "add")  # the generator's D term: as is, replaced by or plus feature matching
# Settings that only say how the run is carried out: --resume may change them. Any other field
# shapes the math, so resuming with a different value is refused.
RESUMABLE = ("engine", "threads", "eval_every", "checkpoint_every", "keep_checkpoints", "data_dir", "cache_dir", "verify_md5",
             "signal_timeout", "startup_timeout", "heartbeat_timeout", "on_failure", "max_restarts", "out",
             "device", "devices", "deterministic", "d_replicas", "c_replicas", "replica_sync", "sync_every", "serve_batch",
             "serve_lr_scaling")


class ConfigError(ValueError):
    """Bad user input; the message is one line that says what to do."""


def _has_type(value, annotation: str) -> bool:
    """Does a JSON value fit a field annotation ("int", "float | None", ...)? bool is not a number here."""
    allowed = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "None": (type(None),)}
    kinds = tuple(t for part in annotation.split("|") for t in allowed[part.strip()])
    return isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)


@dataclass
class TrainConfig:
    # what to train
    k: int = 8  # number of generators
    dataset: str = "ring8"  # ring8, grid25 (2-D, generated), cifar10, mnist, or the path of your images
    data_dir: str = "data"  # where the image data sets' official files are (or are downloaded to)
    cache_dir: str | None = None  # their HDF5 caches; None: <data_dir>/cache
    verify_md5: bool = True
    ring_modes: int = 8
    ring_radius: float = 2.0
    grid_side: int = 5
    grid_spacing: float = 2.0
    mode_std: float | None = None  # None: the data set's default (ring8 0.02, grid25 0.05)
    # how
    engine: str = "parallel"
    rounds: int = 3000
    batch_size: int = 128
    noise_dim: int | None = None  # None: 2 for the 2-D data sets, 100 for images (DCGAN)
    noise: str = "normal"
    hidden: int = 128
    width: int = 64  # the DCGAN models' base width (64 in DCGAN; 8 makes a CPU smoke run cheap)
    lr_generator: float = 2e-4
    lr_discriminator: float = 2e-4
    lr_classifier: float = 2e-4
    optimizer_generator: str = "adam"
    optimizer_discriminator: str = "adam"
    optimizer_classifier: str = "adam"
    lr_decay: str = "linear"  # every learning rate falls linearly to 0 over the run; "none" keeps them
    adam_beta1: float = 0.5
    adam_beta2: float = 0.999
    beta_schedule: str = "time"
    beta0: float | None = None  # None: 3 for the 2-D data sets (measured: README), 1 (PGAN's) for images
    beta_decay: float | None = None  # λ; None: ln(100) / rounds
    beta_tau: float = 1.0
    threshold: float = 0.99  # t: the generator's D term is truncated where D(x) > t
    generator_loss: str = "pgan"  # D's term of J^G: pgan (1 − d, truncated), ns (−log D), minimax (log(1 − D))
    classifier: str = "ovr"  # C's objective: ovr (PGAN), softmax, one-vs-all, pairwise (MGAN eqs. 2-4)
    feature_matching: str = "off"  # replace (Improved GAN) or add ‖E_data f − E_G f‖² to each generator's D term
    minibatch_features: int = 0  # B of minibatch discrimination in the built-in D; 0: off
    minibatch_kernel_dim: int = 5  # C of minibatch discrimination
    virtual_batch_norm: bool = False  # the built-in generators normalise with a reference batch fixed at the start
    label_smoothing: float = 1.0  # α, D's target for real samples (one-sided; 0.9 in Improved GAN); 1: none
    historical_averaging: float = 0.0  # λ of λ‖θ − mean of past θ‖² in every role's objective; 0: off
    seed: int = 0
    device: str = "cpu"  # the slot buffer, and every role not placed by devices: cpu, cuda, cuda:N
    devices: str | None = None  # role placement on several GPUs, e.g. "generators:cuda:0,cuda:1;discriminator:cuda:2"
    deterministic: bool = False  # deterministic kernels in every process (torch.use_deterministic_algorithms)
    threads: int = 1  # torch threads per process (per role in the parallel engine)
    # the asynchronous engine: D and C processes (replicas) and how their parameters stay in step
    d_replicas: int = 1
    c_replicas: int = 1
    replica_sync: str = "copy"  # copy: replicas load the primary's parameters every sync_every steps; hogwild: one shared set
    sync_every: int = 10
    serve_batch: int = 1  # the most waiting slots a D or C process takes in one step (1: one step per slot)
    serve_lr_scaling: str = "sqrt"  # a step on g slots: D's and C's learning rate × √g (sqrt) or as is (none)
    # models
    shared_trunk: bool = False  # MGAN: the classifier is a second head on D's trunk, run in D's process
    share_generator_body: bool = False  # MGAN: generators differ only in their first layer; one body, shared
    generator: str = "standard"  # the built-in generator: standard, or sdeconv (stochastic filter banks)
    bank: int = 8  # sdeconv: filters per bank
    stochastic_layers: int = 2  # sdeconv: the deep layers (nearest z) that pick their filters from a bank
    # None: the MLPs for 2-D data, the DCGAN models for images (--generator sdeconv: its own)
    generator_factory: str | None = None
    discriminator_factory: str | None = None
    classifier_factory: str | None = None
    # evaluation, checkpoints, signals
    eval_every: int = 500
    eval_samples: int | None = None  # None: 2500 for 2-D data, 64 per generator for images
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    signal_timeout: float = 120.0  # seconds any role waits for a peer before it gives up
    startup_timeout: float = 180.0
    heartbeat_timeout: float = 30.0  # a role silent this long (stopped, deadlocked) is killed as hung
    # what a crashed role costs: "stop" ends the run; "respawn" restarts the role from its latest
    # checkpoint while the others wait at a round boundary, at most max_restarts times per role
    on_failure: str = "stop"
    max_restarts: int = 3
    out: str | None = None

    @property
    def images(self) -> bool:
        return self.dataset not in DATASETS

    @property
    def decay(self) -> float:
        return default_decay(self.rounds) if self.beta_decay is None else self.beta_decay

    def lr_factor(self, round_index: int) -> float:
        """The learning-rate multiplier of a round: a function of the round alone, like every RNG
        stream, so both engines and a resumed run agree."""
        return 1.0 - round_index / self.rounds if self.lr_decay == "linear" else 1.0

    @property
    def roles(self) -> list[str]:
        """Every role of the run: generator-0..K-1, discriminator, and classifier when K > 1."""
        names = [f"generator-{k}" for k in range(self.k)] + ["discriminator"]
        return names + (["classifier"] if self.k > 1 else [])

    @property
    def replicas(self) -> list[str]:
        """The extra D and C processes of the async engine: discriminator-1.., classifier-1.. (the
        primaries are the roles ``discriminator`` and ``classifier``; only they checkpoint)."""
        if self.engine != "async":
            return []
        names = [f"discriminator-{r}" for r in range(1, self.d_replicas)]
        return names + ([f"classifier-{r}" for r in range(1, self.c_replicas)] if self.k > 1 else [])

    def host(self, role: str) -> str:
        """The process that runs ``role``: itself, except C under ``--shared-trunk`` (D's process)."""
        return "discriminator" if role == "classifier" and self.shared_trunk else role

    @property
    def processes(self) -> list[str]:
        """Every child process of a multi-process run: the roles, then the replicas. With
        ``shared_trunk`` C runs in D's process."""
        return [r for r in self.roles if self.host(r) == r] + self.replicas

    def validate(self) -> "TrainConfig":
        def need(ok: bool, message: str):
            if not ok:
                raise ConfigError(message)

        def choice(name: str, options):
            value = getattr(self, name)
            need(value in options, f"--{name.replace('_', '-')} must be one of {', '.join(options)}, got {value!r}")

        need(isinstance(self.k, int) and self.k >= 1, f"--k must be an integer ≥ 1, got {self.k!r}")
        need(isinstance(self.dataset, str) and (self.dataset in DATASETS + IMAGE_DATASETS or Path(self.dataset).exists()),
             f"--dataset must be one of {', '.join(DATASETS + IMAGE_DATASETS)}, or the path of your images "
             f"(.h5, .npy, .npz or a folder), got {self.dataset!r}")
        # defaults that depend on the data: filled in here, so config.json records what ran
        if self.noise_dim is None:
            self.noise_dim = 100 if self.images else 2
        if self.eval_samples is None:
            self.eval_samples = 64 if self.images else 2500
        if self.beta0 is None:
            # A larger initial β spreads the generators over the modes before they settle: with PGAN's
            # β0 = 1, grid25 at K = 25 leaves a corner mode unclaimed (docs/reproduce-2d). Images keep
            # the paper's value, which nothing here has measured against.
            self.beta0 = 1.0 if self.images else 3.0
        choice("generator", GENERATORS)
        if self.generator == "sdeconv":
            sdeconv = SDECONV_FACTORIES[self.images]
            need(self.generator_factory in (None, sdeconv),
                 f"--generator sdeconv is the built-in {sdeconv}; leave out --generator-factory (or drop --generator sdeconv)")
            self.generator_factory = sdeconv
        for role, factory in (DCGAN_FACTORIES if self.images else MLP_FACTORIES).items():
            if getattr(self, f"{role}_factory") is None:
                setattr(self, f"{role}_factory", factory)
        choice("engine", ENGINES)
        choice("generator_loss", GENERATOR_LOSSES)
        choice("classifier", CLASSIFIERS)
        choice("feature_matching", FEATURE_MATCHING)
        need(isinstance(self.historical_averaging, (int, float)) and math.isfinite(self.historical_averaging)
             and self.historical_averaging >= 0,
             f"--historical-averaging is a weight λ ≥ 0 (0 = off), got {self.historical_averaging!r}")
        need(isinstance(self.label_smoothing, (int, float)) and 0.5 < self.label_smoothing <= 1.0,
             f"--label-smoothing is D's real target α in (0.5, 1] (0.9 in Improved GAN; 1 = none), got {self.label_smoothing!r}")
        choice("noise", NOISE_PRIORS)
        choice("lr_decay", LR_DECAYS)
        choice("beta_schedule", SCHEDULES)
        choice("on_failure", ON_FAILURE)
        choice("replica_sync", REPLICA_SYNCS)
        choice("serve_lr_scaling", LR_SCALINGS)
        for name in ("d_replicas", "c_replicas", "sync_every", "serve_batch"):
            value = getattr(self, name)
            need(isinstance(value, int) and value >= 1, f"--{name.replace('_', '-')} must be an integer ≥ 1, got {value!r}")
        need(self.engine == "async" or (self.d_replicas == 1 and self.c_replicas == 1),
             "--d-replicas and --c-replicas need --engine async (the other engines run one D and one C)")
        need(not (self.shared_trunk and self.engine == "async"),
             "--shared-trunk works with --engine sequential, batched or parallel (the async engine serves D and C apart)")
        need(not (self.share_generator_body and self.engine == "async"),
             "--share-generator-body works with --engine sequential, batched or parallel (its body steps once per round)")
        need(not (self.share_generator_body and self.on_failure == "respawn"),
             "--share-generator-body steps the body in generator 0; use --on-failure stop with it (and --resume after a failure)")
        need(not (self.share_generator_body and self.devices),
             "--share-generator-body keeps the one body on --device; drop --devices")
        need(not (self.share_generator_body and (self.generator == "sdeconv" or self.virtual_batch_norm)),
             "--share-generator-body works with the standard generator without --virtual-batch-norm")
        need(not (self.shared_trunk and self.on_failure == "respawn"),
             "--shared-trunk runs C inside D's process; use --on-failure stop with it (and --resume after a failure)")
        need(not (self.engine == "async" and self.on_failure == "respawn"),
             "--on-failure respawn works with --engine parallel; the async engine stops on a failure (resume it with --resume)")
        for role in ("generator", "discriminator", "classifier"):
            choice(f"optimizer_{role}", OPTIMIZERS)
            lr = getattr(self, f"lr_{role}")
            need(isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0, f"--lr-{role} must be > 0, got {lr!r}")
        for name in ("rounds", "batch_size", "noise_dim", "hidden", "width", "threads", "eval_every", "eval_samples",
                     "checkpoint_every", "keep_checkpoints", "ring_modes", "grid_side",
                     "minibatch_kernel_dim", "bank", "stochastic_layers"):
            value = getattr(self, name)
            need(isinstance(value, int) and value >= 1,
                 f"--{name.replace('_', '-')} must be an integer ≥ 1, got {value!r}")
        need(isinstance(self.minibatch_features, int) and self.minibatch_features >= 0,
             f"--minibatch-features is B, the kernels of minibatch discrimination (0 = off), got {self.minibatch_features!r}")
        need(0.0 < self.threshold < 1.0, f"--threshold is a probability strictly between 0 and 1, got {self.threshold!r}")
        need(isinstance(self.beta0, (int, float)) and self.beta0 >= 0, f"--beta0 must be ≥ 0, got {self.beta0!r}")
        need(self.beta_decay is None or self.beta_decay >= 0, f"--beta-decay must be ≥ 0, got {self.beta_decay!r}")
        need(self.beta_tau > 0, f"--beta-tau must be > 0, got {self.beta_tau!r}")
        need(0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1, "--adam-beta1/--adam-beta2 must lie in [0, 1)")
        need(self.mode_std is None or self.mode_std > 0, f"--mode-std must be > 0, got {self.mode_std!r}")
        need(self.ring_radius > 0 and self.grid_spacing > 0, "--ring-radius and --grid-spacing must be > 0")
        for name in ("signal_timeout", "startup_timeout", "heartbeat_timeout"):
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and math.isfinite(value) and value > 0,
                 f"--{name.replace('_', '-')} must be a number of seconds > 0, got {value!r}")
        need(isinstance(self.max_restarts, int) and self.max_restarts >= 0,
             f"--max-restarts must be an integer ≥ 0, got {self.max_restarts!r}")
        need(self.out is None or (isinstance(self.out, str) and self.out.strip() and "\0" not in self.out),
             f"out must be a directory path, got {self.out!r}")
        need(isinstance(self.device, str), f"--device must be a device name, got {self.device!r}")
        need(self.devices is None or isinstance(self.devices, str), f"--devices must be a placement, got {self.devices!r}")
        from .devices import check
        check(self)
        need(isinstance(self.seed, int) and 0 <= self.seed < 2**63, f"--seed must be an integer in [0, 2^63), got {self.seed!r}")
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}; see 'sharedgan launch --help'")
        for field in dataclasses.fields(cls):
            if field.name in data and not _has_type(data[field.name], field.type):
                raise ConfigError(f"config key {field.name!r} must be {field.type}, got {data[field.name]!r}")
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path) -> "TrainConfig":
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config {path} must hold a JSON object")
        return cls.from_dict(data)
