"""The parallel engine: one process per role, lock-step rounds. ``supervisor`` is the runner's side,
``child`` the entry point of every child, ``links`` a role's view of the signals, ``loops`` the
roles' rounds."""
