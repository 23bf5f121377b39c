#!/bin/sh
# Pick the config named by GATEWAY_PROFILE, take the upstream from UPSTREAM_URL
# (http://host:port) and run HAProxy in the foreground as the unprivileged user.
set -eu
profile="${GATEWAY_PROFILE:-stock}"
case "$profile" in
    stock|hardened) ;;
    *) echo "haproxy: unknown GATEWAY_PROFILE '${profile}' (expected stock or hardened)" >&2; exit 2;;
esac
upstream="${UPSTREAM_URL:-}"
case "$upstream" in
    http://*) ;;
    *) echo "haproxy: UPSTREAM_URL must be http://host:port, got '${upstream}'" >&2; exit 2;;
esac
hostport="${upstream#http://}"
hostport="${hostport%%/*}"
case "$hostport" in
    *:*) ;;
    *) hostport="${hostport}:80";;
esac
# The configs read the upstream as "${UPSTREAM_ADDR}" (HAProxy expands environment
# variables in double-quoted strings: configuration manual, 2.3).
export UPSTREAM_ADDR="$hostport"
echo "haproxy profile=${profile} upstream=${hostport}"
# -db: stay in the foreground, no daemon (management guide, 3); nothing written to disk.
exec haproxy -db -f "/etc/gateway-haproxy/${profile}.cfg"
