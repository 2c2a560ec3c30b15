"""``--transport distributed``: the parallel engine's roles as the ranks of a torchrun job.

``torchrun`` places (``torchrun``), the runner on rank 0 (``runner``), a role on every other rank
(``launch``); the regions a signal carries move by torch.distributed point-to-point
(:mod:`sharedgan.runtime.transport`). docs/cluster.md has the commands and what each failure does.
"""
