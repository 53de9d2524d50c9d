#!/usr/bin/env bash
# Install one of Debian's packages the tests need (chromium, haproxy), quick when present.
# Usage: scripts/debian-install.sh PACKAGE COMMAND-OR-PATH "what it is for" MAKE-TARGET
set -euo pipefail
package=$1 wanted=$2 why=$3 target=$4
present() { [ -x "$wanted" ] || command -v "$wanted" >/dev/null 2>&1; }
present && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "$wanted not found ($why): install Debian's $package package as root" \
       "(apt-get install --no-install-recommends $package), then run make $target again" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -q --no-install-recommends "$package" >/dev/null; }
# A fresh machine's package lists may be missing or stale: update only when the install fails.
install || { apt-get update -q >/dev/null && install; }
present || { echo "$package installed but $wanted is missing" >&2; exit 1; }
