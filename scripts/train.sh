#!/usr/bin/env bash
# Sets up and runs the default training job: a Transformer agent learns the T-Maze memory task on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "torch==2.13.0" || python -m pip install -q "torch>=2.4"
python -m pip install -q -e .
python examples/04_tmaze.py "$@"
