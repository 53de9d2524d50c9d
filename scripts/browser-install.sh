#!/usr/bin/env bash
# Debian's Chromium for the console's browser test; Playwright drives it and never downloads a
# browser of its own (this machine reaches no download host).
exec "$(dirname "$0")/debian-install.sh" chromium /usr/bin/chromium \
  "the agent console's browser test" browser
