#!/usr/bin/env bash
# Set up miStudio in ./.venv: PyTorch first (a CPU build where one is at hand), then the project,
# then the web UI. Usage: scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch before the project, so pip does not pull a multi-GB CUDA build for a bare requirement
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "torch==2.13.0" || .venv/bin/python -m pip install -q "torch>=2.4"
fi
if [ "${1:-}" = "--dev" ]; then
  .venv/bin/python -m pip install -q -e ".[dev]"
  # SAEDashboard, the oracle of the Neuronpedia tests, pins transformers<4.57 and transformer-lens<3: installed
  # without its dependencies (the ones its runner and converter import are in the dev extra)
  if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('sae-dashboard') != '0.8.0')" 2>/dev/null; then
    .venv/bin/python -m pip install -q --no-deps "sae-dashboard==0.8.0"
  fi
else
  .venv/bin/python -m pip install -q -e .
fi
if [ -f frontend/package.json ] && command -v npm >/dev/null 2>&1; then
  (cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
else
  echo "note: npm not found; the web UI is not built (the REST API and CLI work without it)" >&2
fi
