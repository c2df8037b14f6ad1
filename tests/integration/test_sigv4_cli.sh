#!/bin/sh
# Integration test of `hcpipe aws sigv4-case`: for every case folder of shared/testdata/sigv4
# (aws-c-auth layout) and shared/testdata/aws-captures (AWS CLI captures), the binary's
# --print creq|sts|sig output must equal the expected file byte for byte (cmp), and --print authz
# must equal the Authorization line of the signed request (header-signed-request.txt or
# request.http) where the case has one. Also checks the usage exits (--help 0, bad usage 2).
#
# Test data: $HCPIPE_SHARED/testdata, else <ancestor>/shared/testdata of the repository or of
# the working directory. Prints "N passed, N failed"; exits non-zero on any failure.
set -u
: "${HCPIPE_BIN:?HCPIPE_BIN must name the binary}"
here=$(cd "$(dirname "$0")" && pwd)
passed=0 failed=0

find_testdata() {
    if [ -n "${HCPIPE_SHARED:-}" ]; then
        [ -d "$HCPIPE_SHARED/testdata/sigv4" ] && echo "$HCPIPE_SHARED/testdata"
        return
    fi
    for start in "$here/../.." "$(pwd)"; do
        d=$(cd "$start" && pwd)
        while :; do
            if [ -d "$d/shared/testdata/sigv4" ]; then echo "$d/shared/testdata"; return; fi
            [ "$d" = "/" ] && break
            d=$(dirname "$d")
        done
    done
}

data=$(find_testdata)
if [ -z "$data" ]; then
    echo "test_sigv4_cli: shared/testdata not found (set HCPIPE_SHARED)"
    echo "0 passed, 1 failed"
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() { # name want_file what dir
    if "$HCPIPE_BIN" aws sigv4-case --print "$3" "$4" >"$tmp/out" 2>"$tmp/err" &&
        cmp -s "$tmp/out" "$2"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL $1 --print $3"
        cat "$tmp/err"
    fi
}

run_suite() { # suite creq sts sig signed-request
    n=0
    for dir in "$data/$1"/*/; do
        [ -d "$dir" ] || continue
        dir=${dir%/}
        name="$1/$(basename "$dir")"
        n=$((n + 1))
        check "$name" "$dir/$2" creq "$dir"
        check "$name" "$dir/$3" sts "$dir"
        check "$name" "$dir/$4" sig "$dir"
        if [ -f "$dir/$5" ] && grep -q '^Authorization:' "$dir/$5"; then
            grep '^Authorization:' "$dir/$5" | head -n 1 | tr -d '\r\n' |
                sed -e 's/^Authorization: *//' >"$tmp/authz"
            check "$name" "$tmp/authz" authz "$dir"
        fi
    done
    echo "$1: $n case folders"
}

run_suite sigv4 header-canonical-request.txt header-string-to-sign.txt header-signature.txt \
    header-signed-request.txt
run_suite aws-captures canonical-request.txt string-to-sign.txt signature.txt request.http

expect_rc() { # want_rc description args...
    want=$1 desc=$2
    shift 2
    "$HCPIPE_BIN" "$@" >/dev/null 2>&1
    rc=$?
    if [ "$rc" -eq "$want" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL $desc: exit $rc, want $want"
    fi
}
expect_rc 0 "aws --help" aws --help
expect_rc 2 "aws without command" aws
expect_rc 2 "unknown aws command" aws no-such-command
expect_rc 2 "sigv4-case without folder" aws sigv4-case --print creq
expect_rc 2 "sigv4-case bad --print" aws sigv4-case --print bogus "$data/sigv4/get-vanilla"
expect_rc 1 "sigv4-case missing folder" aws sigv4-case --print sig "$tmp/none"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
