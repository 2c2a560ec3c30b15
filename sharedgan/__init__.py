"""sharedgan: train a mixture of K GAN generators in parallel on one machine (PGAN, Algorithm 1).

Python API::

    from sharedgan import TrainConfig, train, load_run
    result = train(TrainConfig(k=4, dataset="ring8", rounds=500))
    samples, generator = load_run(result.run_dir).sample(2500)
"""
__version__ = "0.1.0"

from .config import ConfigError, TrainConfig  # noqa: E402
from .trainer import RunResult, TrainingInterrupted, load_run, resume, train  # noqa: E402
from .runner import RoleFailed  # noqa: E402

__all__ = ["TrainConfig", "ConfigError", "train", "resume", "load_run", "RunResult", "TrainingInterrupted", "RoleFailed",
           "__version__"]
