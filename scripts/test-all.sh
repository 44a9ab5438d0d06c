#!/usr/bin/env bash
# Tests every Go module in the repository: the root module and each nested
# module (the gin, echo and MCP adapters, the examples), each on its own with
# GOWORK=off, the way a user consumes it. gofmt over the whole tree, then
# go vet and go test -race in each module.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

modules=$(find . -name go.mod -not -path './.git/*' -not -path '*/testdata/*' -exec dirname {} \; | sort)
failed=()
for dir in $modules; do
	echo "=== module $dir"
	start=$(date +%s)
	( cd "$dir" && go vet ./... && go test -race -count=1 ./... ) || failed+=("$dir")
	echo "--- module $dir: $(( $(date +%s) - start ))s"
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "FAILED modules: ${failed[*]}"
	exit 1
fi
echo "all $(echo $modules | wc -w) modules passed"
