#!/usr/bin/env bash
# infra/chromium.sh — Debian's chromium for the browser tests (Playwright drives it by its
# executable path, so no browser is downloaded from elsewhere). Does nothing when present.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "chromium: already installed ($(/usr/bin/chromium --version 2>/dev/null || echo unknown version))"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "chromium: updating the package lists (apt-get update)"
$SUDO apt-get update -qq
echo "chromium: installing Debian's chromium package (this can take a few minutes)"
log=$(mktemp)
if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "chromium: ERROR: apt-get install chromium failed (full log: $log)" >&2
  exit 1
fi
echo "chromium: $(grep -c '^Setting up' "$log" || true) packages set up"
rm -f "$log"
echo "chromium: installed ($(/usr/bin/chromium --version 2>/dev/null || echo unknown version))"
