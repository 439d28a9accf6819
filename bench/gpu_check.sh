#!/usr/bin/env bash
# One short GPU check for a lent CUDA machine: device placement, bf16/fp16 autocast, throughput,
# peak GPU memory, and a short end-to-end train(). Record its JSON in bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi: CPU fallback"
exec timeout 300 "$PY" bench/gpu_check.py "$@"
