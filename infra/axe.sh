#!/usr/bin/env bash
# infra/axe.sh — axe-core (Deque's accessibility rules) from npm, for the browser tests: they
# inject its axe.min.js into each page. Kept under .cache/axe; does nothing when present.
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VERSION=4.10.3
DIR="$REPO_DIR/.cache/axe"
SCRIPT="$DIR/node_modules/axe-core/axe.min.js"

if [ -f "$SCRIPT" ] && grep -q "\"version\": \"$VERSION\"" "$DIR/node_modules/axe-core/package.json"; then
  echo "axe-core: already installed ($VERSION)"
  exit 0
fi
command -v npm >/dev/null || {
  echo "axe-core: ERROR: npm is needed (apt-get install npm), then retry" >&2; exit 1; }
mkdir -p "$DIR"
echo "axe-core: installing axe-core@$VERSION from npm into .cache/axe"
npm install --silent --no-audit --no-fund --prefix "$DIR" "axe-core@$VERSION" >/dev/null
[ -f "$SCRIPT" ] || { echo "axe-core: ERROR: $SCRIPT missing after npm install" >&2; exit 1; }
echo "axe-core: installed ($VERSION)"
