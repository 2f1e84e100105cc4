#!/usr/bin/env bash
# Install, then start the main job on the embedded defaults (dry-run, no keys, no network). Ctrl-C stops it.
# Extra arguments go to `bsmart run`, e.g. scripts/run.sh --config config/config.json
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/bsmart run "$@"
