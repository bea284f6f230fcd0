#!/usr/bin/env bash
# infra/bootstrap.sh — the project's Python environment in .venv: created on first use,
# re-installed only when pyproject.toml changes (a stamp holds its hash).
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$REPO_DIR/.venv"
STAMP="$VENV/.installed"

log() { echo "setup: $*" >&2; }

pick_python() {
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && \
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "setup: ERROR: Python 3.11 is needed (python3.11 or python3 at 3.11); install it and retry" >&2
  exit 1
}

want=$(sha256sum "$REPO_DIR/pyproject.toml" | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi
python=$(pick_python)
if [ ! -x "$VENV/bin/python" ]; then
  log "creating the virtual environment in .venv..."
  "$python" -m venv "$VENV"
  # venv ships without ensurepip on some Debian pythons: say what to install.
  [ -x "$VENV/bin/pip" ] || { log "ERROR: no pip in .venv; apt-get install python3-venv"; exit 1; }
fi
log "installing Python dependencies from PyPI (first run ~1 min)..."
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$REPO_DIR[dev]"
echo "$want" > "$STAMP"
log "Python environment ready."
