"""sharedgan: train a mixture of K GAN generators in parallel on one machine (PGAN, Algorithm 1).

Python API::

    from sharedgan import TrainConfig, train, load_run
    result = train(TrainConfig(k=4, dataset="ring8", rounds=500))
    samples, generator = load_run(result.run_dir).sample(2500)
"""
from sharedgan.api import RunResult, TrainingInterrupted, resume, train
from sharedgan.config import TrainConfig
from sharedgan.errors import ConfigError, RoleFailed
from sharedgan.runs import load_run
from sharedgan.version import __version__

__all__ = ["TrainConfig", "ConfigError", "train", "resume", "load_run", "RunResult", "TrainingInterrupted",
           "RoleFailed", "__version__"]
