#!/usr/bin/env bash
# Builds an unmodified kube-apiserver v1.34.4 from the Go module proxy for
# the Kubernetes e2e test (task test:k8s) and prints the binary's path.
# k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces the staging
# modules with ./staging paths), so the wrapper module in
# scripts/kube-apiserver (main.go = upstream cmd/kube-apiserver/apiserver.go)
# requires k8s.io/kubernetes v1.34.4 and replaces each staging module with
# its published v0.34.4. About 11 minutes and 1.5 GiB of module cache on 2
# cores; the binary (~146 MB) is cached in DIR and reused.
#   scripts/kube-apiserver.sh [DIR]   (default ~/.cache/troupe/kube-apiserver-v1.34.4)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
V=v1.34.4
DIR=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/troupe/kube-apiserver-$V}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
BIN=$DIR/kube-apiserver
if [ ! -x "$BIN" ]; then
	echo "scripts/kube-apiserver.sh: building kube-apiserver $V into $DIR (about 11 minutes)" >&2
	LDF="-X k8s.io/component-base/version.gitVersion=$V -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34 -X k8s.io/component-base/version.gitTreeState=clean"
	# Build in a copy: -mod=mod may touch go.sum, and the repo stays clean.
	W=$(mktemp -d)
	trap 'rm -rf "$W"' EXIT
	cp "$HERE/kube-apiserver/main.go" "$HERE/kube-apiserver/go.mod" "$HERE/kube-apiserver/go.sum" "$W/"
	(cd "$W" && GOFLAGS=-mod=mod nice -n 10 go build -ldflags "$LDF" -o "$BIN.tmp" . >&2)
	mv "$BIN.tmp" "$BIN"
fi
"$BIN" --version >&2
echo "$BIN"
