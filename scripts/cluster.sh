#!/usr/bin/env bash
# Runs a 3-member troupe cluster on loopback, like etcd's Procfile: builds
# ./cmd/troupe into a temp dir and starts
#
#   member  client                  peer                    actor API
#   n1      http://127.0.0.1:2379   http://127.0.0.1:2380   127.0.0.1:2378
#   n2      http://127.0.0.1:22379  http://127.0.0.1:22380  127.0.0.1:22378
#   n3      http://127.0.0.1:32379  http://127.0.0.1:32380  127.0.0.1:32378
#
# with data dirs ./cluster.troupe/n1..n3 (a second run restarts the same
# cluster from them; remove ./cluster.troupe for a new one). Each member's
# log lines are prefixed with its name. Ctrl-C (or SIGTERM) stops the three
# members this script started, by pid, and waits for them. Extra arguments
# are passed to every member, e.g. scripts/cluster.sh --log-level debug.
#
#   ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 endpoint status -w table
set -euo pipefail

cd "$(dirname "$0")/.."

bindir=$(mktemp -d "${TMPDIR:-/tmp}/troupe-cluster-bin.XXXXXX")
pids=()

stop() {
	trap - INT TERM EXIT
	if [ ${#pids[@]} -gt 0 ]; then
		echo "cluster.sh: stopping members (pids ${pids[*]})" >&2
		kill -TERM "${pids[@]}" 2>/dev/null || true
		for pid in "${pids[@]}"; do
			wait "$pid" 2>/dev/null || true
		done
	fi
	rm -rf "$bindir"
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

echo "cluster.sh: building ./cmd/troupe into $bindir" >&2
go build -o "$bindir/troupe" ./cmd/troupe

names=(n1 n2 n3)
prefixes=("" 2 3)
initial=""
for i in 0 1 2; do
	initial+="${initial:+,}${names[$i]}=http://127.0.0.1:${prefixes[$i]}2380"
done

mkdir -p cluster.troupe
for i in 0 1 2; do
	name=${names[$i]} p=${prefixes[$i]}
	client="http://127.0.0.1:${p}2379"
	peer="http://127.0.0.1:${p}2380"
	# Each member runs in a session of its own (setsid execs it in place, so
	# $! is troupe's pid): a Ctrl-C reaches only this script, which then
	# sends one SIGTERM (a second signal would cut the graceful stop short).
	# Its output goes through sed, which ignores Ctrl-C and ends when the
	# member closes its output, so no last lines are lost.
	setsid "$bindir/troupe" serve \
		--name "$name" \
		--data-dir "cluster.troupe/$name" \
		--listen-client-urls "$client" --advertise-client-urls "$client" \
		--listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
		--listen-actor-url "127.0.0.1:${p}2378" \
		--initial-cluster "$initial" \
		--initial-cluster-state new \
		--initial-cluster-token troupe-cluster-1 \
		--log-format text \
		"$@" \
		> >(trap '' INT TERM; exec sed -u "s/^/$name | /") 2>&1 &
	pids+=($!)
done

cat >&2 <<EOF
cluster.sh: members n1 n2 n3 (pids ${pids[*]}), data in ./cluster.troupe
  endpoints: 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379
  actor API: 127.0.0.1:2378, 127.0.0.1:22378, 127.0.0.1:32378
  ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 endpoint status -w table
Ctrl-C stops them.
EOF

# Wait until a member exits (or a signal arrives); then stop the others.
status=0
wait -n "${pids[@]}" || status=$?
echo "cluster.sh: a member exited (status $status); stopping the others" >&2
exit "$status"
