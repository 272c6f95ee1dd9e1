#!/usr/bin/env bash
# One command: set up everything the tests need (PostgreSQL and Chromium from Debian when run as root,
# the project with its dev extra, the web UI) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  need=""
  command -v pg_ctlcluster >/dev/null 2>&1 || need="$need postgresql"
  [ -x /usr/bin/chromium ] || need="$need chromium"
  if [ -n "$need" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
  fi
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -z "${MISTUDIO_TEST_POSTGRES_URL:-}" ]; then
  cluster=$(pg_lsclusters -h | awk 'NR==1{print $1" "$2}')
  if [ -n "$cluster" ]; then
    pg_ctlcluster $cluster start 2>/dev/null || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
    su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
    export MISTUDIO_TEST_POSTGRES_URL="postgresql+psycopg://postgres:postgres@127.0.0.1:5432/postgres"
  fi
fi
scripts/setup.sh --dev
.venv/bin/ruff check src tests benchmarks
.venv/bin/lint-imports  # layering contracts: [tool.importlinter] in pyproject.toml
.venv/bin/mypy  # types: [tool.mypy] in pyproject.toml
if [ -f frontend/package.json ] && command -v npm >/dev/null 2>&1; then
  (cd frontend && npm test --silent)
fi
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
