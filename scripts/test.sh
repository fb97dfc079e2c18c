#!/usr/bin/env bash
# Runs go vet and every test of the module, then the concurrent packages
# under the race detector. The end-to-end tests (./e2e) also need real etcd:
# etcd 3.6.8 and its etcdctl, the reference the differential tests compare
# troupe with (built once by scripts/etcd36.sh into a cache, passed to the
# tests as $TROUPE_ETCD36; set it to a directory holding both to skip the
# build), and Debian's etcd 3.4 (etcd-server, etcd-client), whose snapshots
# troupe must keep restoring and whose etcdctl has `snapshot restore`.
# Extra arguments go to `go test`, e.g. scripts/test.sh -run TestRange -v.
# TROUPE_E2E_SERVER=etcd scripts/test.sh runs the e2e suite against etcd 3.6.8.
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
	echo "scripts/test.sh: etcd or etcdctl missing; installing Debian's etcd-server and etcd-client" >&2
	if [ "$(id -u)" -eq 0 ]; then
		sudo=()
	elif command -v sudo >/dev/null 2>&1; then
		sudo=(sudo)
	else
		echo "scripts/test.sh: need root (or sudo) to apt-get install etcd-server etcd-client; install them and rerun" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update
	"${sudo[@]}" apt-get install -y --no-install-recommends etcd-server etcd-client
	# Debian may start an etcd service on 2379/2380; the tests use free ports,
	# so it does no harm, but it is not ours to keep running.
fi

if [ -z "${TROUPE_ETCD36:-}" ]; then
	TROUPE_ETCD36=$(scripts/etcd36.sh | tail -n1)
fi
export TROUPE_ETCD36

go vet ./...
# CI replays a fixed chaos schedule (any seed replays with -chaos.seed=N or
# TROUPE_CHAOS_SEED=N); 'task test:chaos' and plain go test take new seeds.
if [ "${CI:-}" = "true" ]; then
	export TROUPE_CHAOS_SEED="${TROUPE_CHAOS_SEED:-1795561178615146495}"
fi
go test -timeout 14m ./... "$@"
# The actor and persistence packages again under the race detector (their
# goroutines meet through mailboxes, locks and the wait registry). ./node
# and ./e2e are left out: every member starts protoactor remotes, and
# Remote.Start replaces gRPC's process-wide logger without synchronisation,
# which the detector reports as soon as a test starts a second member.
go test -race -timeout 10m ./actors/... ./persistence/... ./internal/... ./failpoint ./chaos "$@"
