#!/usr/bin/env bash
# Install with the dev extra, then run the whole test suite (slow suites included, as CI does).
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow" -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --dev
exec .venv/bin/python -m pytest "$@"
