#!/usr/bin/env bash
# Install Debian's HAProxy for the replicas test (three `techbot run` behind one address).
# Quick when present.
set -euo pipefail
command -v haproxy >/dev/null && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "haproxy not found: install Debian's haproxy package as root" \
       "(apt-get install --no-install-recommends haproxy), then run make loadbalancer again" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -q --no-install-recommends haproxy >/dev/null; }
# A fresh machine's package lists may be missing or stale: update only when the install fails.
install || { apt-get update -q >/dev/null && install; }
command -v haproxy >/dev/null || { echo "haproxy installed but not on PATH" >&2; exit 1; }
