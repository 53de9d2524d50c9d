#!/usr/bin/env bash
# Debian's HAProxy for the replicas test: three `techbot run` behind one address.
exec "$(dirname "$0")/debian-install.sh" haproxy haproxy "the replicas test's load balancer" \
  loadbalancer
