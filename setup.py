from setuptools import find_packages, setup

setup(
    name="sharedgan",
    version="0.1.0",
    description="Parallel mix-generator GAN trainer (PGAN): K generator processes, D and C, one shared slot buffer",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["sharedgan", "sharedgan.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1,<2.15",
        "numpy>=1.24",
        "pyzmq>=25",
        "click>=8.1",
        "h5py>=3.8",
        "matplotlib>=3.7",
    ],
    # metrics: Inception score and FID. torch-fidelity needs torchvision, which must match your torch
    # (pip picks the torchvision release built for it; see docs/images.md).
    # tensorboard: the run mirrored into RUN/tensorboard/ as it trains (sharedgan.board); the tests read it back
    extras_require={"test": ["pytest>=7", "ruff>=0.5", "tensorboard>=2.10"], "metrics": ["torch-fidelity>=0.3"],
                    "tensorboard": ["tensorboard>=2.10"]},
    entry_points={"console_scripts": ["sharedgan=sharedgan.cli:main"]},
    scripts=["bin/sharedgan"],
    classifiers=["Operating System :: POSIX :: Linux", "License :: OSI Approved :: MIT License"],
)
