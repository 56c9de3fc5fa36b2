#!/bin/sh
# Writes the golden data dirs the store's migration tests open: one per layout an
# earlier commit wrote. Each is made by that commit's own binary, built from this
# repository's history (never from anything fetched), in a network namespace of its
# own (userspace WireGuard, so peers can be made; the namespace takes the interface
# with it). Run as root from the repository root:
#   sh testdata/datadirs/gen.sh
# Layouts (git log -- mesh/store mesh/catalog):
#   v0.1.0   b9503e2  schema 1, JSON records, app keys "name"          (first release)
#   7b13a38  7b13a38  schema 1, JSON records, app keys "org/name"
#   4c0af38  4c0af38  schema 1, binary records
#   v0.2.0   4ecf7e8  schema 2, binary records (schema marked since e70e7c0)
set -eu
root=$(pwd)
out=$root/testdata/datadirs
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

gen() { # name commit
	name=$1 commit=$2
	src=$work/src-$name
	mkdir -p "$src"
	git -C "$root" archive "$commit" | tar -x -C "$src"
	(cd "$src" && go build -tags agent -o "$work/dogwood-$name" ./cmd/dogwood) # one binary, before and after the split
	unshare --net sh "$out/gen-one.sh" "$work/dogwood-$name" "$work/$name"
	mkdir -p "$out/$name"
	cp "$work/$name/h1/dogwood.db" "$out/$name/dogwood.db"
	"$work/dogwood-$name" version >/dev/null 2>&1 || true
	echo "$name: $commit" >&2
}

gen v0.1.0 b9503e2
gen 7b13a38 7b13a38
gen 4c0af38 4c0af38
gen v0.2.0 4ecf7e8
