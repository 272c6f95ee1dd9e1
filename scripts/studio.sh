#!/usr/bin/env bash
# One command: set up, load the offline demo (tiny model + SAE + dashboards) once, and serve the studio.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ ! -f "${MISTUDIO_HOME:-$HOME/.mistudio}/.demo-done" ]; then
  .venv/bin/mistudio demo && touch "${MISTUDIO_HOME:-$HOME/.mistudio}/.demo-done"
fi
exec .venv/bin/mistudio serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}"
