"""The math every engine shares, free of processes: the objectives (``losses``), β schedules, and
the counter-based random streams (``seeding``)."""
