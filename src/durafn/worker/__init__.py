"""The worker: leases work from the store, runs executors and activities, commits checkpoints."""
