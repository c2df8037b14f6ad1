#!/bin/sh
# Container health check: GET /readyz on the address hcpipe listens on (HCPIPE_LISTEN, default
# 0.0.0.0:8080; a wildcard address is reached on loopback), over HTTPS when HCPIPE_TLS_CERT is set
# (the certificate is not verified: the request never leaves the container). Exits 0 when ready
# and 1 otherwise, the two codes Docker's HEALTHCHECK defines.
listen=${HCPIPE_LISTEN:-0.0.0.0:8080}
port=${listen##*:}
host=${listen%:*}
case "$host" in
    0.0.0.0 | "") host=127.0.0.1 ;;
    "[::]") host="[::1]" ;;
esac
scheme=http
insecure=""
if [ -n "${HCPIPE_TLS_CERT:-}" ]; then
    scheme=https
    insecure="--insecure"
fi
curl --fail --silent --show-error --max-time 4 $insecure --globoff \
    "$scheme://$host:$port/readyz" -o /dev/null || exit 1
exit 0
