#!/usr/bin/env bash
# Checks how the nested modules require the root module. Each must require
# a real release of github.com/kyapay/kyapay-go (vMAJOR.MINOR.PATCH), never
# a placeholder pseudo-version: a user's `go get` of an adapter ignores the
# adapter's replace directive and would fail to resolve a placeholder. With
# --release, each required version must also exist as a git tag, which is
# what RELEASING.md runs before tagging the nested modules.
set -euo pipefail
cd "$(dirname "$0")/.."
release=false
[ "${1:-}" = "--release" ] && release=true
root=github.com/kyapay/kyapay-go
bad=0
for mod in $(find . -name go.mod -not -path './go.mod' -not -path './.git/*' -not -path '*/testdata/*' | sort); do
	# Requirements of any module path under the root that this one is not.
	self=$(awk '/^module /{print $2; exit}' "$mod")
	while read -r path version; do
		[ -z "$path" ] && continue
		[ "$path" = "$self" ] && continue
		if ! [[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
			echo "check-modules: $mod requires $path at $version; require a released version (see RELEASING.md)" >&2
			bad=1
			continue
		fi
		if $release; then
			tag=$version
			[ "$path" != "$root" ] && tag="${path#"$root"/}/$version"
			if ! git rev-parse -q --verify "refs/tags/$tag" >/dev/null; then
				echo "check-modules: $mod requires $path $version but tag $tag does not exist; tag it first (see RELEASING.md)" >&2
				bad=1
			fi
		fi
	done < <(awk -v root="$root" '
		/^replace/ || /^\)/ { inreq = 0 }
		/^require \(/ { inreq = 1; next }
		{
			line = $0
			sub(/\/\/.*/, "", line)
			n = split(line, f, /[ \t]+/)
			i = 1; while (i <= n && f[i] == "") i++
			if (f[i] == "require") i++
			else if (!inreq) next
			if (f[i] == root || index(f[i], root "/") == 1) print f[i], f[i+1]
		}' "$mod")
done
exit $bad
