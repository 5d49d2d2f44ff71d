#!/usr/bin/env bash
# ruff (lint + format check) and mypy --strict on the package; assumes scripts/test.sh installed .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { python3 -m venv .venv; .venv/bin/python -m pip install --quiet -e '.[dev]'; }
.venv/bin/ruff check src tests examples bench
.venv/bin/ruff format --check src tests examples bench
.venv/bin/mypy
