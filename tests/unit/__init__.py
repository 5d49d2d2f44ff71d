"""Tier-1 tests: the executors, the codec and the app registry; pure, no I/O, no threads."""
