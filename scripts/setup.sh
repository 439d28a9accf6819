#!/usr/bin/env bash
# Set up everything in ./.venv: PyTorch (CPU wheel unless a GPU is present), the requirements, and
# t4r_core itself (editable). Safe to run again: it only installs what is missing.
#   bash scripts/setup.sh            # library, app, tests
#   bash scripts/setup.sh --browser  # also Debian's Chromium for the end-to-end browser test (root)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
"$VPY" -m pip install -q --upgrade pip
if ! "$VPY" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    "$VPY" -m pip install -q "torch>=2.4,<2.15"        # CUDA build from the index
  else
    "$VPY" -m pip install -q "torch==2.13.0"           # CPU wheel (small), see DEVELOPERS.md
  fi
fi
"$VPY" -m pip install -q -r requirements.txt
"$VPY" -m pip install -q --no-deps -e .
if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null
  else
    echo "Chromium is missing: run 'sudo apt-get install -y chromium' for the browser test" >&2
  fi
fi
