#!/usr/bin/env bash
# infra/translations.sh — each service's gettext catalogs (services/<service>/translations).
#   update   extract the texts of the code and templates, and merge them into every .po
#            (new texts come in empty: translate them, then `make test` checks none is missing)
#   compile  turn every .po into the .mo the services read (the install step runs it; quick
#            when nothing changed)
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_DIR"
PYBABEL="$REPO_DIR/.venv/bin/pybabel"
SERVICES=(donations notifications)
LOCALES=(fr)

update() {
  for service in "${SERVICES[@]}"; do
    dir="services/$service/translations"
    mkdir -p "$dir"
    pot=$(mktemp --suffix=.pot)
    # file-only locations and a header kept as it was: two branches translating different
    # files touch different lines of the .po, so git merges them without a conflict
    "$PYBABEL" extract -F babel.cfg -k _l -k lazy_gettext --no-wrap --sort-by-file --add-location=file \
      --project=difts -o "$pot" "services/$service" >/dev/null 2>&1
    for locale in "${LOCALES[@]}"; do
      po="$dir/$locale/LC_MESSAGES/messages.po"
      if [ -f "$po" ]; then
        header=$(sed '/^$/q' "$po")
        "$PYBABEL" update --no-wrap --ignore-obsolete -i "$pot" -d "$dir" -l "$locale" >/dev/null 2>&1
        { printf '%s\n\n' "$header"; sed '1,/^$/d' "$po"; } >"$po.new" && mv "$po.new" "$po"
      else
        "$PYBABEL" init --no-wrap -i "$pot" -d "$dir" -l "$locale" >/dev/null
      fi
    done
    rm -f "$pot"
    "$REPO_DIR/.venv/bin/python" - "$dir/fr/LC_MESSAGES/messages.po" "$service" <<'PY'
import sys
from babel.messages.pofile import read_po

with open(sys.argv[1], "rb") as handle:
    catalog = read_po(handle)
texts = [message for message in catalog if message.id]
missing = [m for m in texts if m.fuzzy or not all(m.string if isinstance(m.string, tuple) else [m.string])]
print(f"translations: {sys.argv[2]}: {len(texts)} texts, {len(missing)} still to translate in {sys.argv[1]}")
PY
  done
}

compile() {
  for service in "${SERVICES[@]}"; do
    dir="services/$service/translations"
    [ -d "$dir" ] || continue
    for po in "$dir"/*/LC_MESSAGES/messages.po; do
      mo="${po%.po}.mo"
      if [ ! -f "$mo" ] || [ "$po" -nt "$mo" ]; then
        "$PYBABEL" compile -i "$po" -o "$mo" >/dev/null 2>&1 || "$PYBABEL" compile -i "$po" -o "$mo"
        echo "translations: compiled $mo" >&2
      fi
    done
  done
}

case "${1:-}" in
  update) update ;;
  compile) compile ;;
  *) echo "usage: $0 update|compile" >&2; exit 2 ;;
esac
