"""``python -m sharedgan.cli``, as ``python -m sharedgan``."""

from sharedgan.cli import main

main()
