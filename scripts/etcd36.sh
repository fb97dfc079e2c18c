#!/usr/bin/env bash
# Builds etcd 3.6.8 and etcdctl 3.6.8, the reference troupe's differential
# tests compare with, from the Go module proxy into DIR (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/troupe/etcd-v3.6.8) and prints DIR on its
# last line. A binary whose version stamp (DIR/.NAME.version) matches is kept,
# so only the first run builds (about 2-5 minutes on 2 cores).
#   scripts/etcd36.sh [DIR]
#   export TROUPE_ETCD36=$(scripts/etcd36.sh | tail -n1)
# `go install go.etcd.io/etcd/server/v3@v3.6.8` is refused (its go.mod has
# replace directives), so each binary is built from a wrapper module of its
# own whose main calls etcd's.
set -euo pipefail

version=v3.6.8
dir=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/troupe/etcd-$version}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# build NAME MODULE PACKAGE CALL: DIR/NAME from a module whose main is
# `PACKAGE.CALL`, unless DIR/NAME of this version is there.
build() {
	local name=$1 module=$2 pkg=$3 call=$4 work
	if [ -x "$dir/$name" ] && [ "$(cat "$dir/.$name.version" 2>/dev/null)" = "$version" ]; then
		return 0
	fi
	echo "scripts/etcd36.sh: building $name $version into $dir" >&2
	work=$(mktemp -d)
	cat >"$work/main.go" <<GO
package main

import (
	"os"

	"$pkg"
)

func main() {
	_ = os.Args
	$call
}
GO
	printf 'module troupe-%s-wrapper\n\ngo 1.24\n' "$name" >"$work/go.mod"
	(
		cd "$work"
		go get "$module@$version"
		go mod tidy
		CGO_ENABLED=0 go build -trimpath -o "$dir/$name.tmp" .
	) >"$work/build.log" 2>&1 || {
		cat "$work/build.log" >&2
		rm -rf "$work"
		echo "scripts/etcd36.sh: building $name failed (needs the Go module proxy)" >&2
		return 1
	}
	rm -rf "$work"
	mv "$dir/$name.tmp" "$dir/$name"
	echo "$version" >"$dir/.$name.version"
}

build etcd go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3/etcdmain 'etcdmain.Main(os.Args)'
build etcdctl go.etcd.io/etcd/etcdctl/v3 go.etcd.io/etcd/etcdctl/v3/ctlv3 'ctlv3.MustStart()'
"$dir/etcd" --version | sed -n 1p >&2
"$dir/etcdctl" version | sed -n 1p >&2
echo "$dir"
