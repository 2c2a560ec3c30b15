"""The training configuration: one typed dataclass, validated at the edge.

``TrainConfig`` is what ``sharedgan launch`` builds from its options, what ``config.json`` in a
run directory holds (``--config`` reruns it), and what the Python API takes.

Each field is declared once, with :func:`setting`: its default, its help (the text of its
``sharedgan launch`` option), its choices, and two marks. ``resumable``: it only says how the run
is carried out, so ``--resume`` may change it (:data:`RESUMABLE`). ``fingerprint``: a
checkpoint's tensors depend on it, so resuming with another value is refused
(:data:`FINGERPRINT_FIELDS`, recorded in every checkpoint's manifest). Every other field shapes the math too, so
``--resume`` refuses a change of it as well. The launch options, :data:`RESUMABLE` and the
fingerprint are derived from these declarations.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from sharedgan.data.mixtures import DATASETS
from sharedgan.errors import ConfigError, UntrustedRun
from sharedgan.math.augment import AUGMENTATIONS
from sharedgan.math.beta_schedule import SCHEDULES, default_decay
from sharedgan.math.losses import CLASSIFIERS
from sharedgan.models.spec import canonical_factory
from sharedgan.runtime.devices import check as check_devices

ENGINES = ("parallel", "sequential", "batched", "async")


REPLICA_SYNCS = ("copy", "hogwild")  # how the replicas of D and C stay in step (engine async)


LR_SCALINGS = ("sqrt", "none")  # the learning rate of an async D or C step on several slots


GENERATOR_LOSSES = ("pgan", "ns", "minimax", "hinge")  # see losses.generator_d_term


SPECTRAL_NORMS = ("off", "discriminator", "both")  # --spectral-norm: the built-in D's layers, or D's and C's
DISCRIMINATOR_NORMS = ("batch", "none")  # --discriminator-norm: the built-in image D's hidden layers


REALNESS = ("auto", "off")  # --realness: PRDC per generator at every evaluation (eval.realness)


OPTIMIZERS = ("adam", "sgd")


NOISE_PRIORS = ("normal", "uniform")


LR_DECAYS = ("none", "linear")


ON_FAILURE = ("stop", "respawn")
TRANSPORTS = ("shm", "distributed")  # --transport: one machine's shared buffer, or torchrun ranks (sharedgan.cluster)


IMAGE_DATASETS = ("cifar10", "mnist")  # and your own: the path of an .h5, .npy, .npz or an image folder


MODEL_ROLES = ("generator", "discriminator", "classifier")
MAX_K = 1024  # generators: beyond this, a run would spend its life starting processes
MLP_FACTORIES = {role: f"sharedgan.models.mlp:mlp_{role}" for role in MODEL_ROLES}


DCGAN_FACTORIES = {role: f"sharedgan.models.dcgan:{role}" for role in MODEL_ROLES}


# --generator: the built-in generator (sdeconv: stochastic ensembling; resize: images, upsample + convolution)
GENERATORS = ("standard", "sdeconv", "resize")


RESIZE_FACTORY = "sharedgan.models.dcgan:resize_generator"
SDECONV_FACTORIES = {False: "sharedgan.models.mlp:sdeconv_mlp_generator",
                     True: "sharedgan.models.dcgan:sdeconv_generator"}


TENSORBOARD = ("auto", "on", "off")  # --tensorboard: mirror run.h5 into RUN/tensorboard/ (sharedgan.board)
FEATURE_MATCHING = ("off", "replace", "add")  # the generator's D term: as is, replaced by or plus feature matching
TEACHER_TERMS = ("adversarial", "likelihood")  # --teacher-term: D_T's term, or the teacher's exact −log p_T
# defaults that changed: what a run made before the change trained with (TrainConfig.from_dict's run).
# Images: R1 since 2026-12-07. (The resize generator became their default then too, but every config.json
# names its generator_factory, from which a missing --generator is derived as before.)
FORMER_DEFAULTS = {"r1": 0.0}


PRECISIONS = ("fp32", "bf16")  # --precision: the models' training forward passes


def setting(default, help: str, *, choices: tuple[str, ...] | None = None, path: bool = False, resumable: bool = False,
            fingerprint: bool = False, flag: str | None = None):
    """A :class:`TrainConfig` field with everything said about it in one place.

    ``help`` is its ``sharedgan launch`` option's help (the default is appended there unless the
    text gives one); ``choices`` the values it may take (a click.Choice on the command line,
    checked by :meth:`TrainConfig.validate`); ``path`` makes the option a click.Path; ``flag``
    overrides the option's name (default ``--field-name``; a bool field gets ``--x/--no-x``).
    """
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "path": path,
                                                        "resumable": resumable, "fingerprint": fingerprint,
                                                        "flag": flag})


def _has_type(value, annotation: str) -> bool:
    """Does a JSON value fit a field annotation ("int", "float | None", ...)? bool is not a number here."""
    allowed = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "None": (type(None),)}
    kinds = tuple(t for part in annotation.split("|") for t in allowed[part.strip()])
    return isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)


@dataclass
class TrainConfig:
    # (field order is the order of sharedgan launch --help)
    # what to train
    k: int = setting(8, "Number of generators (K). K = 1 is a plain GAN with no classifier.", fingerprint=True)
    dataset: str = setting(
        "ring8", "Data: ring8 (8 Gaussians on a circle), grid25 (5×5 grid), cifar10, mnist, or the path of your images "
        "(.h5 with 'images' [N, H, W, C] uint8, .npy, .npz, or a folder of PNG/JPEG); see 'sharedgan data'.",
        fingerprint=True)
    data_dir: str = setting("data", "Where the official image files are, or are downloaded to.", path=True,
                            resumable=True)
    cache_dir: str | None = setting(None, "Where the HDF5 caches of image data sets go [default: DATA_DIR/cache].",
                                    path=True, resumable=True)
    verify_md5: bool = setting(
        True, "Check downloaded or given archives against their published MD5 (off: a re-packed copy; its content is "
        "still checked).", resumable=True)
    # how
    engine: str = setting(
        "parallel", "parallel: one process per generator plus D and C, lock-step rounds. sequential: the same math in "
        "one process. batched: one process, D and C take one step on all K slots at once (faster, not Algorithm 1; see "
        "docs/architecture.md). async: no lock-step; free D and C processes (--d-replicas, --c-replicas) serve "
        "slots as they arrive (not deterministic).", choices=ENGINES, resumable=True)
    rounds: int = setting(
        3000, "Training rounds. Each round: every generator one batch and one update; D and C K updates each.")
    batch_size: int = setting(128, "Samples per generator batch (m), also D's real batch.")
    # (sharedgan launch --lr sets all three learning rates)
    lr_generator: float = setting(2e-4, "Generator learning rate.")
    lr_discriminator: float = setting(2e-4, "Discriminator learning rate.")
    lr_classifier: float = setting(2e-4, "Classifier (adjustment component) learning rate.")
    lr_decay: str = setting(
        "linear", "none: constant learning rates. linear: all fall linearly to 0 by the last round.", choices=LR_DECAYS)
    optimizer_generator: str = setting("adam", "Generator optimiser.", choices=OPTIMIZERS, fingerprint=True)
    optimizer_discriminator: str = setting("adam", "Discriminator optimiser.", choices=OPTIMIZERS, fingerprint=True)
    optimizer_classifier: str = setting("adam", "Classifier optimiser.", choices=OPTIMIZERS, fingerprint=True)
    adam_beta1: float = setting(0.5, "Adam first-moment decay (the papers use 0.5).")
    adam_beta2: float = setting(0.999, "Adam second-moment decay.")
    noise_dim: int | None = setting(
        None, "Dimension of the generator's noise z [default: 2 for 2-D data, 100 for images].", fingerprint=True)
    noise: str = setting("normal", "Noise prior: standard normal or uniform on [−1, 1].", choices=NOISE_PRIORS)
    hidden: int = setting(128, "Width of the built-in MLPs' hidden layers (2-D data).", fingerprint=True)
    width: int = setting(64, "Base width of the DCGAN models (images): 64 as in DCGAN; 8 for a quick CPU run.",
                         fingerprint=True)
    beta_schedule: str = setting(
        "time", "Weight β_k of the classifier term: constant β0; time β0·exp(−λt); loss-gap β0·2σ(−|Δ_k|/τ); "
        "combined = time × loss-gap.", choices=SCHEDULES)
    # β0 = 3 for 2-D data is measured (docs/results.md); images keep PGAN's 1
    beta0: float | None = setting(None, "Initial (and largest) β [default: 3 for 2-D data, 1 (PGAN's) for images].")
    beta_decay: float | None = setting(
        None, "λ of the time schedule, per round [default: ln(100)/rounds, so β ends at 1% of β0].")
    beta_tau: float = setting(1.0, "τ of the loss-gap schedule, in loss units.")
    threshold: float = setting(0.99, "t: the generator's D term 1 − d(x) is truncated (no gradient) where D(x) > t.")
    generator_loss: str = setting(
        "pgan", "D's term of each generator's objective: pgan 1 − d(x) truncated at t (the paper's); ns −log D(x) "
        "(non-saturating); minimax log(1 − D(x)); hinge −d(x), untruncated, with D's hinge loss "
        "E[max(0, 1 − d(real))] + E[max(0, 1 + d(fake))] (SNGAN).", choices=GENERATOR_LOSSES)
    classifier: str = setting(
        "ovr", "C's objective: ovr (PGAN: head k says 'from the others'); softmax (MGAN general JSD, eq. 2); "
        "one-vs-all (MGAN eq. 3, with the cross terms); pairwise (MGAN eq. 4, one head per pair of generators).",
        choices=CLASSIFIERS)
    classifier_negatives: int = setting(
        0, "N: head k's step contrasts slot k with N samples drawn evenly from the other slots instead of all "
        "(K−1)·m, so C costs K·(m + N) samples a round instead of K²·m (ovr and one-vs-all); 0 = all (Algorithm 1).")
    feature_matching: str = setting(
        "off", "Feature matching (Improved GAN): each generator's D term is replaced by (or, with add, gets added) "
        "‖E_data f(x) − E_G f(x)‖², f the last hidden layer of D.", choices=FEATURE_MATCHING)
    minibatch_features: int = setting(
        0, "Minibatch discrimination in the built-in D: B kernels comparing each sample with the rest of its batch; "
        "0 = off.")
    minibatch_kernel_dim: int = setting(5, "C, the dimension of each minibatch-discrimination kernel.")
    spectral_norm: str = setting(
        "off", "Spectral normalisation (SNGAN) of the built-in D's layers, which then drop batch norm; both: C's "
        "too (your models read ModelSpec.spectral_norm).", choices=SPECTRAL_NORMS)
    discriminator_norm: str = setting(
        "batch", "The built-in image D's hidden-layer normalisation: batch (DCGAN's batch norm) or none (as in the R1 "
        "paper's D, whose penalty then sees each sample's own gradient); C keeps its own unless --shared-trunk puts it "
        "on D's; --spectral-norm drops batch norm either way.",
        choices=DISCRIMINATOR_NORMS)
    r1: float | None = setting(
        None, "R1 penalty γ (Mescheder et al.): D also descends γ/2 · E_data ‖∇ₓ d(x)‖², in every --r1-every-th "
        "round, times that interval (lazy regularisation); 0 = off [default: 1 for images, 0 for 2-D data].")
    r1_every: int = setting(16, "Rounds between R1 penalties (16 in StyleGAN2).")
    augment: str = setting(
        "off", "DiffAugment (Zhao et al.) of real and generated samples before D: off, or a comma list of "
        "translation, cutout, color. C sees them un-augmented; a slot's gradient is still ∂/∂x of its own sample.")
    ema: float = setting(
        0.0, "Decay of an exponential moving average of each generator's weights, which evaluation and sample use "
        "(e.g. 0.999; warmed up as min(decay, (1 + t)/(10 + t)) over t steps); 0 = off.")
    # HGAN's teacher (docs/math.md): an explicit likelihood model distilled into the generators
    teacher_weight: float = setting(
        0.0, "γ: each generator also minimises γ × the teacher's term (HGAN): a teacher role T (an autoregressive "
        "density model trained by maximum likelihood on the data) and its distiller D_T run beside D and C; "
        "0 = no teacher.", fingerprint=True)
    teacher_term: str = setting(
        "adversarial", "The teacher's term of J^{G_k}: adversarial: D_T, a discriminator between teacher samples and "
        "slot k, gives it as D gives its term; likelihood: −log p_T(G_k(z)) through the teacher's exact density "
        "(2-D data).", choices=TEACHER_TERMS, fingerprint=True)
    teacher: str | None = setting(
        None, "A teacher trained before ('sharedgan teacher ... --out T.pt'): loaded at the start and kept fixed "
        "[default: the teacher trains from scratch, one step per round].", path=True)
    teacher_width: int | None = setting(
        None, "The teacher's width: the MLP of the 2-D mixture-density network [default 128], the PixelCNN's "
        "channels for images [default 32].", fingerprint=True)
    teacher_components: int = setting(16, "Mixture components of each factor of the 2-D teacher.", fingerprint=True)
    teacher_sample_every: int = setting(
        1, "Rounds between fresh teacher batches; in between D_T reuses the last ones. A PixelCNN draws a pixel at "
        "a time (seconds a batch on a CPU) unless its --teacher file keeps a pool of its samples ('sharedgan teacher "
        "--pool'), from which a batch is picked at no cost.")
    lr_teacher: float = setting(1e-3, "The teacher's learning rate (maximum likelihood, Adam).")
    virtual_batch_norm: bool = setting(
        False, "Virtual batch norm in the built-in generators: statistics of a reference batch fixed at the start, "
        "plus the sample.")
    # models
    shared_trunk: bool = setting(
        False, "MGAN's sharing: the classifier is a second head on D's trunk, run in D's process (no C process).")
    share_generator_body: bool = setting(
        False, "MGAN's sharing: generators differ only in their first layer; the body is one, stepped each round on "
        "the sum of the K generators' gradients (in the buffer's parameter region in the parallel engine).")
    generator: str | None = setting(
        None, "The built-in generator: standard, sdeconv (stochastic ensembling: each sample picks its deep "
        "layers' filters from a bank; weight norm and PReLU), or resize (images: nearest-neighbour upsampling and a "
        "3 × 3 convolution in place of each stride-2 transposed convolution, which draws no checkerboard "
        "texture) [default: resize for images, standard for 2-D data or with --generator-factory].",
        choices=GENERATORS)
    bank: int = setting(8, "--generator sdeconv: filters in each bank.")
    stochastic_layers: int = setting(2, "--generator sdeconv: how many deep layers (nearest z) pick from a bank.")
    label_smoothing: float = setting(
        1.0, "One-sided label smoothing: D's target for real samples, α in (0.5, 1]; 0.9 as in Improved GAN; 1 = none.")
    historical_averaging: float = setting(
        0.0, "λ: every role (G, D, C) also descends λ‖θ − θ̄‖², θ̄ the mean of its past parameters (Improved GAN); "
        "0 = off.")
    seed: int = setting(0, "Run seed; every random stream is derived from it.")
    # where it runs
    device: str = setting(
        "cpu", "Where the slot buffer and the models live: cpu, cuda or cuda:N (CUDA tensors are shared between the "
        "processes through torch.multiprocessing).", resumable=True)
    devices: str | None = setting(
        None, "Place roles on several GPUs: 'generators:cuda:0,cuda:1;discriminator:cuda:2;classifier:cuda:3' "
        "(generators dealt over their list; unnamed roles on --device).", resumable=True)
    deterministic: bool = setting(
        False, "Deterministic kernels in every process (torch.use_deterministic_algorithms), for bit-exact GPU runs.",
        resumable=True)
    threads: int = setting(1, "Torch threads per process (per role in the parallel engine).", resumable=True)
    pin_roles: bool = setting(
        False, "--engine parallel: pin each process to a block of --threads CPUs of those the run may use: C and the "
        "⌈K/4⌉ generators it serves last share the first, D and the other generators are dealt over the rest (one "
        "process per block where there are enough). For a machine the run has to itself; measured on 2 cores, "
        "K = 4, 8 and 16, only (docs/results.md). The math is unchanged.",
        resumable=True)
    precision: str = setting(
        "fp32", "bf16: every training forward pass of G, D and C under torch.autocast in bfloat16 (matrix products "
        "and convolutions); outputs, losses, the gradients written to the slots, parameters and optimiser states stay "
        "float32, and so do evaluation, HGAN's teacher model (its distiller, a D, follows this option), virtual "
        "batch norm and minibatch discrimination. The sequential and parallel engines run the same steps, so they "
        "still agree bit for bit. Faster only where the processor or GPU has bf16 units (docs/results.md).",
        choices=PRECISIONS)
    slot_precision: str = setting(
        "fp32", "bf16: the slot buffer's batches and the gradients written back (sample, d_grad, c_grad, t_grad) in "
        "bfloat16, half their bytes (shared memory, the distributed transport's traffic, a GPU's memory). D, C and "
        "T read the rounded batch as float32, a generator adds the gradients in float32, so every engine still runs "
        "the same steps (they agree bit for bit), but not the same steps as an fp32 buffer.", choices=PRECISIONS)
    # the asynchronous engine: D and C processes (replicas) and how their parameters stay in step
    d_replicas: int = setting(1, "--engine async: discriminator processes serving the generators (R).",
                              resumable=True)
    c_replicas: int = setting(1, "--engine async: classifier processes serving the generators.", resumable=True)
    replica_sync: str = setting(
        "copy", "--engine async, R > 1: copy: replicas load the primary's parameters every --sync-every steps; "
        "hogwild: all replicas update one set of parameters in shared memory, without locks.", choices=REPLICA_SYNCS,
        resumable=True)
    sync_every: int = setting(
        10, "--replica-sync copy: steps between the primary's publications (and a replica's loads).", resumable=True)
    serve_batch: str | int = setting(
        4, "--engine async: the most waiting slots a D or C process scores and learns from in one step (one forward "
        "pass, one update, as --engine batched does); 1: one step per slot, as Algorithm 1; auto: every slot that "
        "is waiting (up to K). 4 (the default) reached the default launch's quality in the least time "
        "(docs/results.md).", resumable=True)
    serve_lr_scaling: str = setting(
        "sqrt", "--engine async: a D or C step on g slots uses the learning rate × √g (sqrt: fewer, larger steps learn "
        "about as much per round as g single-slot steps) or as set (none).", choices=LR_SCALINGS, resumable=True)
    # the 2-D data sets
    ring_modes: int = setting(8, "ring8: number of modes on the circle.", fingerprint=True)
    ring_radius: float = setting(2.0, "ring8: radius of the circle.")
    grid_side: int = setting(5, "grid25: modes per side.", fingerprint=True)
    grid_spacing: float = setting(2.0, "grid25: distance between neighbouring modes.")
    mode_std: float | None = setting(None, "Std of every mode [default: 0.02 for ring8, 0.05 for grid25].")
    # your models; None: the MLPs for 2-D data, the DCGAN models for images (--generator sdeconv: its own)
    generator_factory: str | None = setting(
        None, "Your generator: 'package.module:function' taking a ModelSpec [default: the MLP for 2-D data, DCGAN for "
        "images].", fingerprint=True)
    discriminator_factory: str | None = setting(None, "Your discriminator factory, likewise.", fingerprint=True)
    classifier_factory: str | None = setting(None, "Your classifier factory (K logit heads), likewise.",
                                             fingerprint=True)
    # evaluation, checkpoints, signals
    eval_every: int = setting(500, "Evaluate on fresh samples every N rounds (and at the end).", resumable=True)
    eval_samples: int | None = setting(
        None, "Fresh samples per generator per evaluation [default: 2500 for 2-D data, 64 for images].")
    realness: str = setting(
        "auto", "Image runs on labelled data: precision, recall, density and coverage of every generator at every "
        "evaluation, in the coverage classifier's features (trained once per data set and cached beside it); off.",
        choices=REALNESS, resumable=True)
    checkpoint_every: int = setting(1000, "Checkpoint every N rounds (and at every stop).", resumable=True)
    keep_checkpoints: int = setting(3, "Complete checkpoints to keep.", resumable=True)
    tensorboard: str = setting(
        "auto", "Mirror run.h5 into RUN/tensorboard/ as it trains (pip install 'sharedgan[tensorboard]'): auto: when "
        "the package is installed; on: also say so when it is not; off.", choices=TENSORBOARD, resumable=True)
    signal_timeout: float = setting(120.0, "Seconds a role waits for a peer's signal before the run fails.",
                                    resumable=True)
    startup_timeout: float = setting(
        180.0, "Seconds the processes may take to start (build their models, load the data, first signals), and a "
        "respawned role to rejoin, before the run fails.", resumable=True)
    heartbeat_timeout: float = setting(
        30.0, "Seconds without a heartbeat after which a role counts as hung (stopped, deadlocked) and is killed.",
        resumable=True)
    transport: str = setting(
        "shm", "How the parallel engine's roles share the slot buffer: shm: one machine, one shared buffer. "
        "distributed: every role a rank of a torchrun job (one node or several), the slot regions each signal "
        "speaks of sent by torch.distributed point-to-point, the signals over ZeroMQ tcp (docs/cluster.md).",
        choices=TRANSPORTS, resumable=True)
    on_failure: str = setting(
        "stop", "stop: a crashed or hung role ends the run. respawn: restart it from its latest checkpoint while the "
        "others wait.", choices=ON_FAILURE, resumable=True)
    max_restarts: int = setting(
        3, "With --on-failure respawn: restarts allowed per role before the run gives up.", resumable=True)
    out: str | None = setting(
        None, "Run directory [default: runs/<timestamp>]. A non-empty one is refused without --force.", path=True,
        resumable=True)

    @property
    def serve_batch_size(self) -> int:
        """--serve-batch as a number of slots (auto: all K)."""
        return self.k if self.serve_batch == "auto" else self.serve_batch

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
        """Every role of the run: generator-0..K-1, discriminator, classifier when K > 1, and the
        teacher (with its distiller) when --teacher-weight > 0."""
        names = [f"generator-{k}" for k in range(self.k)] + ["discriminator"]
        return names + (["classifier"] if self.k > 1 else []) + (["teacher"] if self.teacher_weight else [])

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

    def validate(self, reading: bool = False) -> "TrainConfig":
        """Check every setting (and fill the data-dependent defaults). ``reading``: the config of a
        run that is only read back (sampled, evaluated): checked as strictly, except that its data
        and its devices need not be on this machine."""
        def need(ok: bool, message: str):
            if not ok:
                raise ConfigError(message)

        need(isinstance(self.k, int) and 1 <= self.k <= MAX_K,
             f"--k must be an integer in [1, {MAX_K}], got {self.k!r}")
        need(isinstance(self.dataset, str)
             and (self.dataset in DATASETS + IMAGE_DATASETS or reading or Path(self.dataset).exists()),
             f"--dataset must be one of {', '.join(DATASETS + IMAGE_DATASETS)}, or the path of your images "
             f"(.h5, .npy, .npz or a folder), got {self.dataset!r}")
        # defaults that depend on the data: filled in here, so config.json records what ran
        if self.noise_dim is None:
            self.noise_dim = 100 if self.images else 2
        if self.eval_samples is None:
            self.eval_samples = 64 if self.images else 2500
        if self.teacher_width is None:
            self.teacher_width = 32 if self.images else 128
        if self.beta0 is None:
            # A larger initial β spreads the generators over the modes before they settle: with PGAN's
            # β0 = 1, grid25 at K = 25 leaves a corner mode unclaimed (docs/reproduce-2d). Images keep
            # the paper's value, which nothing here has measured against.
            self.beta0 = 1.0 if self.images else 3.0
        # R1 and the resize generator for images are measured on real digits (docs/results.md#real-digits):
        # with DCGAN's transposed convolutions and no penalty, generators collapse in every seed tried
        if self.r1 is None:
            self.r1 = 1.0 if self.images else 0.0
        if self.generator is None:
            self.generator = "resize" if self.images and self.generator_factory is None else "standard"
        for field in dataclasses.fields(self):  # every setting with choices (generator first: used just below)
            options, value = field.metadata["choices"], getattr(self, field.name)
            need(options is None or value in options,
                 f"{option_flag(field)} must be one of {', '.join(options or ())}, got {value!r}")
        if self.generator == "standard" and self.generator_factory in (RESIZE_FACTORY, *SDECONV_FACTORIES.values()):
            self.generator_factory = None  # another --generator's built-in (a rerun's): the standard one, below
        if self.generator == "sdeconv":
            sdeconv = SDECONV_FACTORIES[self.images]
            need(self.generator_factory in (None, sdeconv),
                 f"--generator sdeconv is the built-in {sdeconv}; leave out --generator-factory "
                 "(or drop --generator sdeconv)")
            self.generator_factory = sdeconv
        if self.generator == "resize":
            need(self.images, "--generator resize is an image generator (its layers upsample); the 2-D data sets use "
                 "the MLPs: drop it")
            need(self.generator_factory in (None, RESIZE_FACTORY),
                 f"--generator resize is the built-in {RESIZE_FACTORY}; leave out --generator-factory")
            self.generator_factory = RESIZE_FACTORY
        for role, factory in (DCGAN_FACTORIES if self.images else MLP_FACTORIES).items():
            if getattr(self, f"{role}_factory") is None:
                setattr(self, f"{role}_factory", factory)
        need(isinstance(self.historical_averaging, (int, float)) and math.isfinite(self.historical_averaging)
             and self.historical_averaging >= 0,
             f"--historical-averaging is a weight λ ≥ 0 (0 = off), got {self.historical_averaging!r}")
        need(isinstance(self.label_smoothing, (int, float)) and 0.5 < self.label_smoothing <= 1.0,
             f"--label-smoothing is D's real target α in (0.5, 1] (0.9 in Improved GAN; 1 = none), "
             f"got {self.label_smoothing!r}")
        if isinstance(self.serve_batch, str) and self.serve_batch != "auto":  # (the command line gives text)
            self.serve_batch = int(self.serve_batch) if self.serve_batch.strip().isdigit() else self.serve_batch
        need(self.serve_batch == "auto" or (isinstance(self.serve_batch, int) and not isinstance(self.serve_batch, bool)
                                            and self.serve_batch >= 1),
             f"--serve-batch must be an integer ≥ 1 or auto, got {self.serve_batch!r}")
        for name in ("d_replicas", "c_replicas", "sync_every"):
            value = getattr(self, name)
            need(isinstance(value, int) and value >= 1,
                 f"--{name.replace('_', '-')} must be an integer ≥ 1, got {value!r}")
        need(self.engine == "async" or (self.d_replicas == 1 and self.c_replicas == 1),
             "--d-replicas and --c-replicas need --engine async (the other engines run one D and one C)")
        need(not (self.shared_trunk and self.engine == "async"),
             "--shared-trunk works with --engine sequential, batched or parallel "
             "(the async engine serves D and C apart)")
        need(not (self.share_generator_body and self.engine == "async"),
             "--share-generator-body works with --engine sequential, batched or parallel "
             "(its body steps once per round)")
        need(not (self.share_generator_body and self.on_failure == "respawn"),
             "--share-generator-body steps the body in generator 0; use --on-failure stop with it "
             "(and --resume after a failure)")
        need(not (self.share_generator_body and self.devices),
             "--share-generator-body keeps the one body on --device; drop --devices")
        need(not (self.share_generator_body and (self.generator == "sdeconv" or self.virtual_batch_norm)),
             "--share-generator-body works with the standard generator without --virtual-batch-norm")
        need(not (self.shared_trunk and self.on_failure == "respawn"),
             "--shared-trunk runs C inside D's process; use --on-failure stop with it (and --resume after a failure)")
        need(not (self.engine == "async" and self.on_failure == "respawn"),
             "--on-failure respawn works with --engine parallel; the async engine stops on a failure "
             "(resume it with --resume)")
        need(not self.pin_roles or (self.engine == "parallel" and self.transport == "shm"
                                    and (reading or hasattr(os, "sched_setaffinity"))),
             f"--pin-roles places the processes of --engine parallel --transport shm on this machine's CPUs (Linux), "
             f"not --engine {self.engine} --transport {self.transport}: drop it (on a resume: --no-pin-roles)")
        if self.transport == "distributed":
            need(self.engine == "parallel", f"--transport distributed runs --engine parallel (its roles are "
                 f"torchrun's ranks); --engine {self.engine} is not built for it")
            need(self.on_failure == "stop", "--on-failure respawn is replaced by torchrun's own restarts with "
                 "--transport distributed: use torchrun --max-restarts R (the group resumes from its latest "
                 "checkpoint)")
            need(not (self.shared_trunk or self.share_generator_body),
                 "--shared-trunk and --share-generator-body are not built for --transport distributed yet")
            need(self.device == "cpu" and not self.devices, "--transport distributed moves CPU tensors over gloo; "
                 "CUDA (NCCL) is not built yet: use --device cpu")
        need(isinstance(self.teacher_weight, (int, float)) and not isinstance(self.teacher_weight, bool)
             and self.teacher_weight >= 0,
             f"--teacher-weight is a weight γ ≥ 0 (0 = no teacher), got {self.teacher_weight!r}")
        need(not (self.teacher_weight and self.engine == "async"),
             "--teacher-weight works with --engine sequential, batched or parallel (the teacher's distiller serves "
             "every slot of a round in order, as D does; the async engine's dispatch has no place for it yet)")
        need(not (self.teacher_weight and self.teacher_term == "likelihood" and self.images),
             "--teacher-term likelihood needs a density differentiable in x, which the teacher has for 2-D data; the "
             "PixelCNN's likelihood is of 256 discrete levels per pixel: use --teacher-term adversarial for images")
        need(self.teacher is None or bool(self.teacher_weight),
             "--teacher loads a teacher for --teacher-weight γ > 0; give a weight too (e.g. --teacher-weight 1)")
        need(self.teacher is None or (isinstance(self.teacher, str) and self.teacher.strip() != ""),
             f"--teacher must be the path of a teacher file, got {self.teacher!r}")
        for role in ("generator", "discriminator", "classifier", "teacher"):
            lr = getattr(self, f"lr_{role}")
            need(isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0, f"--lr-{role} must be > 0, got {lr!r}")
        for name in ("rounds", "batch_size", "noise_dim", "hidden", "width", "threads", "eval_every", "eval_samples",
                     "checkpoint_every", "keep_checkpoints", "ring_modes", "grid_side",
                     "minibatch_kernel_dim", "bank", "stochastic_layers", "teacher_width", "teacher_components",
                     "teacher_sample_every"):
            value = getattr(self, name)
            need(isinstance(value, int) and value >= 1,
                 f"--{name.replace('_', '-')} must be an integer ≥ 1, got {value!r}")
        need(isinstance(self.minibatch_features, int) and self.minibatch_features >= 0,
             f"--minibatch-features is B, the kernels of minibatch discrimination (0 = off), "
             f"got {self.minibatch_features!r}")
        need(isinstance(self.classifier_negatives, int) and not isinstance(self.classifier_negatives, bool)
             and self.classifier_negatives >= 0,
             f"--classifier-negatives is a number of samples N ≥ 0 (0 = all of the other slots), "
             f"got {self.classifier_negatives!r}")
        need(not self.classifier_negatives or self.classifier in ("ovr", "one-vs-all"),
             f"--classifier-negatives draws negatives for one head at a time: use it with --classifier ovr or "
             f"one-vs-all (--classifier {self.classifier} trains every head on every batch)")
        need(isinstance(self.r1, (int, float)) and not isinstance(self.r1, bool) and self.r1 >= 0,
             f"--r1 is a weight γ ≥ 0 (0 = off), got {self.r1!r}")
        need(isinstance(self.r1_every, int) and self.r1_every >= 1,
             f"--r1-every must be an integer ≥ 1, got {self.r1_every!r}")
        need(isinstance(self.ema, (int, float)) and not isinstance(self.ema, bool) and 0 <= self.ema < 1,
             f"--ema is a decay in [0, 1) (0 = off; 0.999 is usual), got {self.ema!r}")
        need(not (self.ema and self.share_generator_body),
             "--ema keeps an average of each generator's own weights; it does not work with --share-generator-body")
        need(isinstance(self.augment, str) and (self.augment == "off" or all(
             p in AUGMENTATIONS for p in self.augment.split(","))),
             f"--augment is off or a comma list of {', '.join(AUGMENTATIONS)} (e.g. translation,cutout), "
             f"got {self.augment!r}")
        need(self.augment == "off" or self.images,
             "--augment transforms images (shifts, cut-outs, colour); a 2-D run has none: drop it")
        need(not (self.generator_loss == "hinge" and self.label_smoothing != 1.0),
             "--generator-loss hinge brings D's hinge loss, which has no label smoothing; drop --label-smoothing")
        need(0.0 < self.threshold < 1.0,
             f"--threshold is a probability strictly between 0 and 1, got {self.threshold!r}")
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
        need(self.devices is None or isinstance(self.devices, str),
             f"--devices must be a placement, got {self.devices!r}")
        for field in dataclasses.fields(self):  # no setting is infinite or NaN (a run would only diverge)
            value = getattr(self, field.name)
            need(not isinstance(value, float) or math.isfinite(value),
                 f"{option_flag(field)} must be a finite number, got {value!r}")
        if not reading:
            check_devices(self)
        need(isinstance(self.seed, int) and 0 <= self.seed < 2**63,
             f"--seed must be an integer in [0, 2^63), got {self.seed!r}")
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict, run: bool = False) -> "TrainConfig":
        """``run``: ``data`` is a run directory's config.json, which records every setting there was
        when it was written; a key it lacks names a later setting, so the run trained with that
        setting's former default (:data:`FORMER_DEFAULTS`)."""
        if run:
            data = {**{key: value for key, value in FORMER_DEFAULTS.items() if key not in data}, **data}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}; see 'sharedgan launch --help'")
        for field in dataclasses.fields(cls):
            if field.name in data and not _has_type(data[field.name], field.type):
                raise ConfigError(f"config key {field.name!r} must be {field.type}, got {data[field.name]!r}")
        # a run made before the package moved names the built-in factories by their old modules
        factories = {f"{role}_factory": canonical_factory(data.get(f"{role}_factory")) for role in MODEL_ROLES}
        return cls(**{**data, **{name: value for name, value in factories.items() if name in data}})

    @classmethod
    def from_file(cls, path: str | Path, run: bool = False) -> "TrainConfig":
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config {path} must hold a JSON object")
        return cls.from_dict(data, run=run)


BUILTIN_FACTORIES = frozenset([*MLP_FACTORIES.values(), *DCGAN_FACTORIES.values(), *SDECONV_FACTORIES.values(),
                               RESIZE_FACTORY])


def require_consent(config: TrainConfig, source: str, given: dict | None = None, trust: bool = False) -> None:
    """Refuse, before anything is imported, a config read from ``source`` (a run's config.json,
    a --config file) that names a model factory sharedgan does not ship: importing it runs its
    code. It is used only with ``trust`` (--trust-run) or when the user gives the very same
    factory (``given``: the settings given on the command line or by the caller)."""
    if trust:
        return
    for role in MODEL_ROLES:
        name = f"{role}_factory"
        reference = canonical_factory(getattr(config, name))
        mine = canonical_factory((given or {}).get(name))
        if reference is not None and reference not in BUILTIN_FACTORIES and reference != mine:
            flag = "--" + name.replace("_", "-")
            raise UntrustedRun(f"{source} names the model factory {reference!r} ({flag}): code that sharedgan would "
                               f"import and run; if you trust it, pass --trust-run (Python: trust=True), or give "
                               f"{flag} {reference} yourself")


def option_flag(field: dataclasses.Field) -> str:
    """A setting's ``sharedgan launch`` option: ``--field-name`` unless :func:`setting` named another."""
    return field.metadata["flag"] or "--" + field.name.replace("_", "-")


def marked(mark: str) -> tuple[str, ...]:
    """The names of the settings with ``mark`` (``"resumable"``, ``"fingerprint"``), in field order."""
    return tuple(field.name for field in dataclasses.fields(TrainConfig) if field.metadata[mark])


# Settings that only say how the run is carried out: --resume may change them. Any other field
# shapes the math, so resuming with a different value is refused.
RESUMABLE = marked("resumable")
# The settings a checkpoint's tensors depend on: a checkpoint made with other values is refused.
FINGERPRINT_FIELDS = marked("fingerprint")


def fingerprint(config: TrainConfig) -> dict:
    """The values of ``config``'s :data:`FINGERPRINT_FIELDS`, as a checkpoint's manifest records them;
    the teacher's only with a teacher, so a run made before the teacher existed has the same one."""
    teacher = bool(config.teacher_weight)
    return {name: getattr(config, name) for name in FINGERPRINT_FIELDS if teacher or not name.startswith("teacher_")}
