"""What a run leaves on disk: files written whole (``files``), checkpoints, the run directory and
its lock, and run.h5 (``runfile``, its schema)."""
