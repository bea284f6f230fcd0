#!/usr/bin/env bash
# infra/bootstrap.sh — the project's Python environment in .venv: created on first use, and
# installed from requirements.lock (every package pinned, with its hashes) only when the lock
# or pyproject.toml changes (a stamp holds their hash). `make lock` refreshes the lock.
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$REPO_DIR/.venv"
STAMP="$VENV/.installed"
LOCK="$REPO_DIR/requirements.lock"

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

want=$(cat "$REPO_DIR/pyproject.toml" "$LOCK" | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  # The gettext catalogs: compiled when a .po is newer than its .mo (nothing to do otherwise).
  bash "$REPO_DIR/infra/translations.sh" compile
  exit 0
fi
python=$(pick_python)
if [ ! -x "$VENV/bin/python" ]; then
  log "creating the virtual environment in .venv..."
  "$python" -m venv "$VENV"
  # venv ships without ensurepip on some Debian pythons: say what to install.
  [ -x "$VENV/bin/pip" ] || { log "ERROR: no pip in .venv; apt-get install python3-venv"; exit 1; }
fi
log "installing the locked Python dependencies from PyPI (requirements.lock; first run ~1 min)..."
# Every package at its pinned version, checked against its hashes; nothing resolved anew.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --require-hashes \
  --no-deps -r "$LOCK"
# The project itself, editable, built with the locked setuptools (nothing more downloaded).
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
  --no-build-isolation -e "$REPO_DIR"
"$VENV/bin/python" -m pip check >/dev/null || {
  log "ERROR: the installed packages do not fit together; run 'make lock' and retry"; exit 1; }
bash "$REPO_DIR/infra/translations.sh" compile
echo "$want" > "$STAMP"
log "Python environment ready."
