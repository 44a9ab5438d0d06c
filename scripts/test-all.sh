#!/usr/bin/env bash
# Tests every Go module in the repository: the root module and each nested
# module (adapters, examples), each on its own with GOWORK=off, the way a
# user consumes it. It first makes sure what the tests need is there (a C
# compiler for -race; redis-server and redis-cli for the kyapayredis tests,
# which start their own servers on loopback ports), installing it with
# apt-get when it can, and fails with one line saying what to install when
# it cannot. KYAPAY_REQUIRE_REDIS=1 makes those tests fail rather than skip
# when Redis is missing. Then: gofmt over the
# whole tree, the module version check, and go vet and go test -race in
# each module.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off
export CGO_ENABLED=1

# need_pkg CMD PKG WHY: make sure CMD is on PATH, installing the Debian
# package PKG when running as root with apt-get; otherwise fail in one line.
need_pkg() {
	local cmd=$1 pkg=$2 why=$3
	command -v "$cmd" >/dev/null 2>&1 && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "test-all: $cmd not found, and $why; installing Debian package $pkg"
		if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg"; } >/tmp/test-all-apt.log 2>&1 \
			&& command -v "$cmd" >/dev/null 2>&1; then
			return 0
		fi
		echo "test-all: installing $pkg failed (see /tmp/test-all-apt.log); install it by hand: apt-get install $pkg" >&2
		exit 1
	fi
	echo "test-all: $cmd not found, and $why; install it (Debian: apt-get install $pkg) and run again" >&2
	exit 1
}

cc=$(go env CC)
need_pkg "${cc%% *}" gcc "go test -race needs a C compiler (cgo)"
need_pkg redis-server redis-server "the kyapayredis tests start a Redis server"
need_pkg redis-cli redis-tools "the kyapayredis tests create a Redis Cluster"
export KYAPAY_REQUIRE_REDIS=1

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

./scripts/check-modules.sh

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
