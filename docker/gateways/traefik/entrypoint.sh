#!/bin/sh
# Render the chosen profile's dynamic config with UPSTREAM_URL (http://host:port) into /tmp
# (the root is read-only) and run Traefik in the foreground; its logs go to stdout.
set -eu
profile="${GATEWAY_PROFILE:-stock}"
case "$profile" in
  stock|hardened) ;;
  *) echo "traefik: unknown GATEWAY_PROFILE '$profile' (expected stock or hardened)" >&2; exit 2;;
esac
upstream="${UPSTREAM_URL:-}"
case "$upstream" in
  http://?*) ;;
  *) echo "traefik: UPSTREAM_URL must be http://host:port, got '$upstream'" >&2; exit 2;;
esac
upstream="${upstream%/}"
mkdir -p /tmp/traefik
sed -e "s|@UPSTREAM@|${upstream}|g" "/etc/gateway-traefik/${profile}.dynamic.yml" \
    > /tmp/traefik/dynamic.yml
echo "traefik profile=${profile} upstream=${upstream}"
exec traefik --configFile="/etc/gateway-traefik/${profile}.yml"
