#!/usr/bin/env bash
# The bench in one command: creates the peers' environments once, then runs python -m bench.
#
#   bash bench/run.sh                 # full run, every system (~15 minutes)
#   bash bench/run.sh --quick         # smoke run (~2 minutes)
#   bash bench/run.sh --only A,B --peers durafn,restate --repeats 5
#
# Peers live in bench/.envs (git-ignored), never in durafn's .venv:
#   bench/.envs/dbos       venv with dbos
#   bench/.envs/restate    venv with restate-sdk, hypercorn, httpx; and the npm package
#                          @restatedev/restate-server, which ships the server binary
set -euo pipefail
cd "$(dirname "$0")/.."
ENVS=bench/.envs
PYTHON=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet -e '.[dev]'
fi

if ! "$ENVS/dbos/bin/python" -c 'import dbos' 2>/dev/null; then
    echo "bench: creating $ENVS/dbos" >&2
    "$PYTHON" -m venv "$ENVS/dbos"
    "$ENVS/dbos/bin/python" -m pip install --quiet 'dbos>=3.4,<4'
fi

if ! "$ENVS/restate/bin/python" -c 'import restate, hypercorn, httpx' 2>/dev/null; then
    echo "bench: creating $ENVS/restate" >&2
    "$PYTHON" -m venv "$ENVS/restate"
    "$ENVS/restate/bin/python" -m pip install --quiet 'restate-sdk>=1.3,<2' hypercorn httpx
fi

if [ ! -x "$ENVS/restate/node_modules/@restatedev/restate-server-linux-x64/bin/restate-server" ]; then
    echo "bench: installing @restatedev/restate-server into $ENVS/restate" >&2
    (cd "$ENVS/restate" && npm install --no-audit --no-fund --silent '@restatedev/restate-server@^1.7')
fi

exec .venv/bin/python -m bench "$@"
