"""One runner per engine, each run in that engine's own environment (stdlib + the engine only).

A runner is invoked as ``python -m bench.runners.<engine>_runner --system S --workload W ...``,
runs one repeat of one workload and prints one line ``BENCH-RESULT {json}`` on stdout.
"""
