#!/usr/bin/env bash
# Sets up and runs the default training job: a Transformer agent learns the T-Maze memory task on CPU.
# It stops once solved (Lightning's EarlyStopping on val/return, see examples/04_tmaze.py);
# arguments are passed on, e.g. `bash scripts/train.sh --no_stop` trains all 30 epochs.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "torch==2.13.0" || python -m pip install -q "torch>=2.4"
python -m pip install -q -e .
python examples/04_tmaze.py "$@"
