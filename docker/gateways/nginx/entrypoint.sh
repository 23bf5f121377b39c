#!/bin/sh
# Render the chosen profile with UPSTREAM_URL (http://host:port) and run nginx in the
# foreground as the unprivileged user (the harness drops every capability).
set -eu
profile="${GATEWAY_PROFILE:-stock}"
case "$profile" in
  stock|hardened) ;;
  *) echo "GATEWAY_PROFILE must be stock or hardened, got '${profile}'" >&2; exit 2;;
esac
upstream="${UPSTREAM_URL:?UPSTREAM_URL is required (http://host:port)}"
hostport="${upstream#http://}"
hostport="${hostport%%/*}"
mkdir -p /tmp/nginx  # /tmp is a fresh tmpfs under a read-only root
conf=/tmp/nginx/nginx.conf
sed -e "s|@UPSTREAM@|${hostport}|g" -e "s|@COMMON@|/tmp/nginx/common.conf|g" \
    "/etc/gateway-nginx/${profile}.conf" > "$conf"
cp /etc/gateway-nginx/common.conf /tmp/nginx/common.conf
echo "nginx profile=${profile} upstream=${hostport}"
exec nginx -c "$conf" -g 'daemon off;'
