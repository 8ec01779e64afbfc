#!/usr/bin/env bash
# Installs CCF's own Python package (`ccf`: read_ledger.py, receipt and COSE helpers) into a
# virtual environment so that tests can use it as an external oracle, and prints the path of the
# venv's python. Idempotent: a second run only checks the install.
#   CCF_PY=$(scripts/setup-ccf-oracle.sh)
set -euo pipefail
VENV=${COCO_CCF_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/coco-ccf-venv}
pick_python() {
  for c in python3.13 python3.12; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys; assert sys.version_info >= (3,12)' 2>/dev/null; then
      command -v "$c"; return; fi
  done
  if command -v python3 >/dev/null && python3 -c 'import sys; assert sys.version_info >= (3,12)' 2>/dev/null; then
    command -v python3; return; fi
  if command -v pyenv >/dev/null; then
    for v in 3.12 3.13; do
      local version
      version=$(pyenv versions --bare | grep "^$v" | tail -1 || true)
      if [ -n "$version" ]; then PYENV_VERSION=$version pyenv which python3; return; fi
    done
  fi
  echo "need Python >= 3.12 for CCF's ccf package (apt-get install python3.12, or pyenv)" >&2
  exit 1
}
if [ ! -x "$VENV/bin/python" ]; then
  "$(pick_python)" -m venv "$VENV" >&2
fi
if ! "$VENV/bin/python" -c 'import ccf.ledger, cryptography' 2>/dev/null; then
  "$VENV/bin/pip" install -q "ccf==7.0.*" >&2
fi
echo "$VENV/bin/python"
