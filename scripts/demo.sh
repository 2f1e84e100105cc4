#!/usr/bin/env bash
# Install, then start the offline demo: the simulator replays real data, the engine trades it in dry-run, and this
# terminal talks to the real bot through the Telegram emulator. Type /help; /quit or Ctrl-C leaves.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/bsmart demo "$@"
