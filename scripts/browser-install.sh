#!/usr/bin/env bash
# Install Debian's Chromium for the console's browser test; Playwright drives it and never
# downloads a browser of its own (this machine reaches no download host). Quick when present.
set -euo pipefail
browser=/usr/bin/chromium
[ -x "$browser" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "$browser not found: install Debian's chromium package as root" \
       "(apt-get install --no-install-recommends chromium), then run make browser again" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -q --no-install-recommends chromium >/dev/null; }
# A fresh machine's package lists may be missing or stale: update only when the install fails.
install || { apt-get update -q >/dev/null && install; }
[ -x "$browser" ] || { echo "chromium installed but $browser is missing" >&2; exit 1; }
