#!/usr/bin/env bash
# Install the Telegram Bot API emulator (npm telegram-test-api, pinned by the lockfile) for the
# end-to-end tests; skipped when node_modules matches the lockfile already.
set -euo pipefail
cd "$(dirname "$0")/../tests/emulator"
command -v npm >/dev/null || { echo "npm not found: install Node.js (the end-to-end tests need it)" >&2; exit 1; }
stamp=node_modules/.lock-hash
hash=$(sha256sum package-lock.json | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$hash" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$hash" > "$stamp"
fi
