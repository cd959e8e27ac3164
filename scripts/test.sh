#!/usr/bin/env bash
# Sets up (CPU build of torch first, so nothing pulls a multi-GB CUDA build) and runs every test tier.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "torch==2.13.0" || python -m pip install -q "torch>=2.4"
python -m pip install -q -e ".[test,envs,envs-extra,docs,peers]"
ruff check amago_pl tests benchmarks examples
# pytest exits 5 when it collects nothing; treat that as a failure, never as a pass.
set +e
python -m pytest -q -p no:cacheprovider tests "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi
exit "$code"
