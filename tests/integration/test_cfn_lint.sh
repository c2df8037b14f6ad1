#!/bin/sh
# hcpipe-test: files-only (checks the repository's files, runs none of its C code under test)
# Lints deploy/cloudformation.yaml with cfn-lint (the Python one, 1.51.0 on these machines; it
# knows EventBridge's resource types): no error, warning or informational finding. A copy with a
# wrong HttpMethod on the API destination must be reported, so the lint is proven to run on the
# template's resources. Skips (77) when cfn-lint is not installed.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
command -v cfn-lint >/dev/null 2>&1 || { echo "cfn-lint not installed: skipping"; exit 77; }
passed=0 failed=0
version=$(cfn-lint --version 2>&1 | awk '{print $2}')
echo "cfn-lint $version"
case "$version" in
    1.*) passed=$((passed + 1)); echo "PASS cfn-lint 1.x ($version; pinned 1.51.0 on CI)" ;;
    *) failed=$((failed + 1)); echo "FAIL cfn-lint $version is not 1.x" ;;
esac

if out=$(cfn-lint --info deploy/cloudformation.yaml 2>&1); then
    passed=$((passed + 1)); echo "PASS deploy/cloudformation.yaml: no finding"
else
    failed=$((failed + 1)); echo "FAIL deploy/cloudformation.yaml:"; echo "$out"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed 's/HttpMethod: POST$/HttpMethod: SEND/' deploy/cloudformation.yaml >"$tmp/bad.yaml"
if ! cmp -s deploy/cloudformation.yaml "$tmp/bad.yaml" && ! cfn-lint "$tmp/bad.yaml" >/dev/null 2>&1; then
    passed=$((passed + 1)); echo "PASS a wrong HttpMethod is reported"
else
    failed=$((failed + 1)); echo "FAIL a wrong HttpMethod is not reported"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
