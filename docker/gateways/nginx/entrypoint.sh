#!/bin/sh
# Render the chosen profile with UPSTREAM_URL (http://host:port or https://host:port) and
# run nginx in the foreground as the unprivileged user (the harness drops every capability).
# TLS (README "TLS: the run's own CA"): with TLS_DIR set nginx serves TLS on its port from
# $TLS_DIR/cert.pem and key.pem; an https:// UPSTREAM_URL is proxied over TLS (what the
# profile then does about the upstream's certificate is in its .conf). The lines a profile
# uses only for TLS start with a marker (#@tls-serve@, #@tls-upstream@) that is removed
# here when that TLS is on, so they stay comments otherwise. nginx is PID 1: the harness's
# SIGHUP makes its master re-read the config and the certificate files (paths in the
# read-only mount, which the fault swaps by rename) and start new workers.
set -eu
profile="${GATEWAY_PROFILE:-stock}"
case "$profile" in
  stock|hardened) ;;
  *) echo "GATEWAY_PROFILE must be stock or hardened, got '${profile}'" >&2; exit 2;;
esac
upstream="${UPSTREAM_URL:?UPSTREAM_URL is required (http://host:port or https://host:port)}"
case "$upstream" in
  https://*) scheme=https; serve_up='' ; hostport="${upstream#https://}";;
  http://*) scheme=http; serve_up='#@tls-upstream@'; hostport="${upstream#http://}";;
  *) echo "UPSTREAM_URL must start with http:// or https://, got '${upstream}'" >&2; exit 2;;
esac
hostport="${hostport%%/*}"
upstream_host="${hostport%:*}"
if [ -n "${TLS_DIR:-}" ]; then
  listen_ssl=' ssl'; serve_tls=''
else
  listen_ssl=''; serve_tls='#@tls-serve@'
fi
if [ "$scheme" = https ] && [ -z "${TLS_CA:-}" ]; then
  TLS_CA=/nonexistent-TLS_CA   # only hardened reads it: nginx then refuses to start, saying why
fi
mkdir -p /tmp/nginx  # /tmp is a fresh tmpfs under a read-only root
conf=/tmp/nginx/nginx.conf
sed -e "s|@UPSTREAM@|${hostport}|g" -e "s|@COMMON@|/tmp/nginx/common.conf|g" \
    -e "s|@SCHEME@|${scheme}|g" -e "s|@LISTEN_SSL@|${listen_ssl}|g" \
    -e "s|#@tls-serve@|${serve_tls}|g" -e "s|#@tls-upstream@|${serve_up}|g" \
    -e "s|@TLS_DIR@|${TLS_DIR:-}|g" -e "s|@TLS_CA@|${TLS_CA:-}|g" \
    -e "s|@UPSTREAM_HOST@|${upstream_host}|g" \
    "/etc/gateway-nginx/${profile}.conf" > "$conf"
cp /etc/gateway-nginx/common.conf /tmp/nginx/common.conf
echo "nginx profile=${profile} upstream=${scheme}://${hostport} tls_serve=${TLS_DIR:-off}"
exec nginx -c "$conf" -g 'daemon off;'
