"""How the roles' parts are built from the config: the data set, the model spec, each role's model
(from its own seed stream) and optimiser."""

from __future__ import annotations

import torch

from sharedgan.config import TrainConfig
from sharedgan.data.mixtures import make_dataset
from sharedgan.errors import FactoryError
from sharedgan.math.losses import classifier_outputs
from sharedgan.math.seeding import derive_seed
from sharedgan.models.shared_trunk import shared_trunk_head
from sharedgan.models.spec import ModelSpec, build_model, check_output


def dataset_of(config: TrainConfig, build: bool = True):
    """The real data: a 2-D mixture drawn fresh, or images mapped from their cache (built once;
    ``build=False``: only an existing cache, for what only reads a run)."""
    if config.images:
        from sharedgan.data.images import ImageDataset, load
        return ImageDataset(load(config.dataset, config.data_dir, config.cache_dir, config.verify_md5,
                                 download=build, may_build=build))
    return make_dataset(config.dataset, config.ring_modes, config.ring_radius, config.grid_side,
                        config.grid_spacing, config.mode_std)


def model_spec(config: TrainConfig, dataset=None, sample_shape: tuple[int, ...] | None = None) -> ModelSpec:
    """What the models of ``config`` are built from; the sample shape is ``sample_shape``'s, else
    the data set's (opened, or built once for images, if not given)."""
    if sample_shape is None:
        sample_shape = (dataset or dataset_of(config)).sample_shape
    return ModelSpec(tuple(sample_shape), config.noise_dim, config.k, config.hidden, config.width,
                     classifier_outputs=classifier_outputs(config.classifier, config.k), batch_size=config.batch_size,
                     minibatch_features=config.minibatch_features, minibatch_kernel_dim=config.minibatch_kernel_dim,
                     virtual_batch_norm=config.virtual_batch_norm, noise_prior=config.noise, bank=config.bank,
                     stochastic_layers=config.stochastic_layers, spectral_norm=config.spectral_norm,
                     discriminator_norm=config.discriminator_norm)


def make_optimizer(config: TrainConfig, role: str, params) -> torch.optim.Optimizer:
    kind, lr = getattr(config, f"optimizer_{role}"), getattr(config, f"lr_{role}")
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(config.adam_beta1, config.adam_beta2))
    return torch.optim.SGD(params, lr=lr)


def make_model(config: TrainConfig, role: str, spec: ModelSpec, index: int = 0,
               discriminator: torch.nn.Module | None = None, stream_name: str | None = None) -> torch.nn.Module:
    """The model of one role, initialised on the CPU from its own stream (so every device starts
    from the same weights) and checked for output shape; the role moves it to its device. With
    ``--shared-trunk`` the classifier is a head on ``discriminator``'s trunk (built if not given)."""
    seed = derive_seed(config.seed, "init", stream_name or role, index)
    probe_in = torch.zeros(2, spec.noise_dim) if role == "generator" else torch.zeros(2, *spec.sample_shape)
    if role == "classifier" and config.shared_trunk:
        discriminator = discriminator if discriminator is not None else make_model(config, "discriminator", spec)
        at = next(discriminator.parameters()).device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = shared_trunk_head(discriminator, spec).to(at)
        probe_in = probe_in.to(at)
    else:
        net = build_model(getattr(config, f"{role}_factory"), spec, seed)
    if (role == "discriminator" and config.feature_matching != "off"
            and not callable(getattr(net, "forward_features", None))):
        raise FactoryError(f"--feature-matching needs a discriminator with forward_features(x) -> (logits, features); "
                           f"{config.discriminator_factory} has none (the built-in models do)")
    probed = [net] + ([discriminator] if role == "classifier" and config.shared_trunk else [])
    was_training = [m.training for m in probed]
    for m in probed:
        m.eval()  # so a probe never touches batch-norm statistics (D's too, under a shared head)
    with torch.no_grad():
        check_output(role, net(probe_in), 2, spec)
    for m, mode in zip(probed, was_training):
        m.train(mode)
    return net

