from __future__ import annotations

from sharedgan.cli import main

main()

