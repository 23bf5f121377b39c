#!/bin/sh
# Pick the profile's Caddyfile, point it at UPSTREAM_URL (http://host:port) and run Caddy
# in the foreground as the unprivileged user (the harness drops every capability).
set -eu
profile="${GATEWAY_PROFILE:-stock}"
case "$profile" in
  stock|hardened) ;;
  *) echo "caddy: unknown GATEWAY_PROFILE '${profile}' (expected stock or hardened)" >&2; exit 2;;
esac
upstream="${UPSTREAM_URL:-}"
case "$upstream" in
  http://?*) ;;
  *) echo "caddy: UPSTREAM_URL must be http://host:port (got '${upstream}')" >&2; exit 2;;
esac
hostport="${upstream#http://}"
hostport="${hostport%%/*}"
export UPSTREAM="$hostport"  # read by the Caddyfile as {$UPSTREAM}
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME"  # /tmp is a fresh tmpfs under a read-only root
echo "caddy profile=${profile} upstream=${hostport}"
exec caddy run --config "/etc/gateway-caddy/${profile}.Caddyfile" --adapter caddyfile
