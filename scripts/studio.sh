#!/usr/bin/env bash
# One command: set up (only when something changed since the last setup), load the offline demo (tiny model +
# SAE + dashboards) once, and serve the studio on $HOST:$PORT (default 127.0.0.1:8000).
# Once set up it needs no network: a restart with nothing changed installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
HOME_DIR="${MISTUDIO_HOME:-$HOME/.mistudio}"
STAMP=.venv/.mistudio-setup-stamp

# what the installed environment and the built web UI depend on
setup_inputs() {
  sha256sum pyproject.toml scripts/setup.sh
  if [ -f frontend/package.json ]; then
    sha256sum frontend/package.json frontend/package-lock.json frontend/index.html frontend/vite.config.* \
      frontend/tsconfig*.json 2>/dev/null || true
    find frontend/src -type f -print0 | sort -z | xargs -0 sha256sum
  fi
}
wanted=$(setup_inputs | sha256sum | cut -d' ' -f1)
have=$(cat "$STAMP" 2>/dev/null || true)
built=yes
if [ -f frontend/package.json ] && command -v npm >/dev/null 2>&1 && [ ! -f src/mistudio/web/static/index.html ]; then
  built=no
fi
if [ "$wanted" != "$have" ] || [ ! -x .venv/bin/mistudio ] || [ "$built" = no ]; then
  echo "setting up (pyproject.toml, package-lock.json or the web UI changed since the last setup)" >&2
  scripts/setup.sh
  echo "$wanted" > "$STAMP"
fi
if [ ! -f "$HOME_DIR/.demo-done" ]; then
  .venv/bin/mistudio demo && mkdir -p "$HOME_DIR" && touch "$HOME_DIR/.demo-done"
fi
exec .venv/bin/mistudio serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}"
