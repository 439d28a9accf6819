#!/usr/bin/env bash
# Create one virtual environment per peer under bench/.venvs/<peer> (git-ignored), with the exact pins of
# issue 6.  Usage:  bash bench/peers/make_venvs.sh [t4r] [rectools] [recbole]   (default: all three)
# Each venv gets the CPU torch wheel (a local one from $PIP_FIND_LINKS when present, so pip does not pull
# the multi-GB CUDA build).  Logs go to bench/.venvs/<peer>.log; a peer that fails to install does not
# stop the others, and bench/.venvs/<peer>/INSTALL_FAILED holds the failing step.
set -u
HERE="$(cd "$(dirname "$0")/../.." && pwd)"
VENVS="$HERE/bench/.venvs"
PY="${PEER_PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
mkdir -p "$VENVS"
TORCH_SPEC="${PEER_TORCH:-}"
if [ -z "$TORCH_SPEC" ]; then
  for d in ${PIP_FIND_LINKS:-/opt/wheels}; do
    w=$(ls "$d"/torch-*+cpu-*.whl 2>/dev/null | head -1)
    [ -n "$w" ] && TORCH_SPEC="$w" && break
  done
fi
# Fall back to the CPU index only when no local wheel exists (PyPI alone would give the CUDA build).
[ -z "$TORCH_SPEC" ] && TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"

step() {  # step <peer> <description> <command...>
  local peer=$1 desc=$2; shift 2
  echo "== [$peer] $desc: $*" >>"$VENVS/$peer.log"
  if ! "$@" >>"$VENVS/$peer.log" 2>&1; then
    echo "$desc: $*" >"$VENVS/$peer/INSTALL_FAILED"
    echo "[$peer] FAILED at: $desc (see $VENVS/$peer.log)"
    return 1
  fi
}

make_one() {
  local peer=$1 v="$VENVS/$1"
  rm -rf "$v" "$VENVS/$peer.log"
  "$PY" -m venv "$v" || return 1
  local pip="$v/bin/python -m pip install --no-input"
  # transformers4rec 23.12.0 is an sdist whose metadata names a git URL (docs extra); pip >= 25
  # refuses any such distribution from an index ("cannot declare direct URL dependencies")
  local pip_spec="pip"; [ "$peer" = t4r ] && pip_spec="pip<24.1"
  step "$peer" "pip upgrade" $pip -U "$pip_spec" wheel || return 1
  # shellcheck disable=SC2086
  step "$peer" "torch (cpu)" $pip $TORCH_SPEC || return 1
  local torch_pin; torch_pin=$("$v/bin/python" -c "import torch;print(torch.__version__)")
  echo "torch==$torch_pin" >"$v/torch-constraint.txt"
  local c="-c $v/torch-constraint.txt"
  case $peer in
    t4r)
      step t4r "transformers4rec" $pip $c "transformers4rec[pytorch]==23.12.0" "transformers<4.31" "numpy<2" "pyarrow<18" "dask-cuda==23.10.0" || return 1
      step t4r "uninstall rapids-dask-dependency" "$v/bin/python" -m pip uninstall -y rapids-dask-dependency || true
      step t4r "import check" "$v/bin/python" -c "import transformers4rec.torch as tr, merlin.io; print('t4r ok')" || return 1 ;;
    rectools)
      step rectools "rectools" $pip $c "rectools[torch]==0.19.0" || return 1
      step rectools "import check" "$v/bin/python" -c "from rectools.models import SASRecModel, BERT4RecModel; print('rectools ok')" || return 1 ;;
    recbole)
      step recbole "recbole" $pip $c "recbole==1.2.1" || return 1
      step recbole "pins" $pip $c "numpy<2" "pandas<2.3" "setuptools<81" || return 1
      # RecBole 1.2.1 imports ray (via its hyper-tuning module) and several optional packages at start.
      step recbole "optional deps" $pip $c ray thop tensorboard || true
      step recbole "import check" "$v/bin/python" -c "from recbole.quick_start import run_recbole; print('recbole ok')" || return 1 ;;
    *) echo "unknown peer $peer"; return 1 ;;
  esac
  "$v/bin/python" -m pip freeze >"$v/freeze.txt"
  echo "[$peer] ok -> $v"
}

peers=("$@"); [ ${#peers[@]} -eq 0 ] && peers=(t4r rectools recbole)
rc=0
for p in "${peers[@]}"; do make_one "$p" || rc=1; done
exit $rc
