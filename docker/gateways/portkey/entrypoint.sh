#!/bin/sh
# Start the profile's wiring (wiring.mjs), which checks GATEWAY_PROFILE, UPSTREAM_URL and
# FALLBACK_URLS, renders the profile's Portkey config, starts Portkey as its child and
# serves :8000 in the foreground; the logs of both go to stdout/stderr.
set -eu
cd /etc/gateway-portkey
exec node /etc/gateway-portkey/wiring.mjs
