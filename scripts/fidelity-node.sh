#!/usr/bin/env bash
# Fidelity check of the KurrentDB emulator with the official Node.js client
# (@kurrent/kurrentdb-client, pinned in fidelity/node/package-lock.json):
# builds the emulator binary, starts it on free loopback ports (plaintext,
# and TLS with the Go client module's test certificates), installs the Node
# project with `npm ci` and runs its `node --test` suite against it.
#
#   scripts/fidelity-node.sh        # or: make fidelity-node
#
# Environment: GO (go binary), NODE, NPM, CLIENT_VERSION (Go client module
# whose certs/ the TLS listener uses, default v1.4.2), FIDELITY_RACE=1 to
# build the emulator with the race detector, KEEP_WORKDIR=1 to keep the
# temporary directory. Needs Node.js >= 20. Exits non-zero when any test
# fails, when the emulator logs an error or a data race, or when appends did
# not go through BatchAppend.
set -euo pipefail

GO=${GO:-go}
NODE=${NODE:-node}
NPM=${NPM:-npm}
CLIENT_MODULE=github.com/kurrent-io/KurrentDB-Client-Go
CLIENT_VERSION=${CLIENT_VERSION:-v1.4.2}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
project="$root/fidelity/node"
work=$(mktemp -d "${TMPDIR:-/tmp}/kurrentdb-fidelity-node.XXXXXX")
emulator_pid=""
test_pid=""

# kill_tree PID: ends PID and every process below it (node --test runs each
# test file in a child process).
kill_tree() {
	local child
	for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		kill_tree "$child"
	done
	kill -TERM "$1" 2>/dev/null || true
}

cleanup() {
	local status=$?
	if [[ -n "$test_pid" ]]; then
		kill_tree "$test_pid"
		wait "$test_pid" 2>/dev/null || true
	fi
	if [[ -n "$emulator_pid" ]]; then
		kill -TERM "$emulator_pid" 2>/dev/null || true
		for _ in $(seq 1 50); do
			kill -0 "$emulator_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$emulator_pid" 2>/dev/null || true
		wait "$emulator_pid" 2>/dev/null || true
	fi
	if [[ "${KEEP_WORKDIR:-}" == 1 ]]; then
		echo "fidelity-node: work directory kept at $work" >&2
	else
		rm -rf "$work"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
	echo "fidelity-node: $*" >&2
	exit 1
}

command -v "$NODE" >/dev/null || fail "node not found (set NODE); Node.js >= 20 is needed"
command -v "$NPM" >/dev/null || fail "npm not found (set NPM)"
node_major=$("$NODE" -p 'process.versions.node.split(".")[0]')
[[ "$node_major" -ge 20 ]] || fail "Node.js $("$NODE" --version) is too old; >= 20 is needed"

# No package needs its install script: the client's native bridge comes as
# prebuilt per-platform packages, picked by their os/cpu/libc fields.
echo "fidelity-node: npm ci in fidelity/node" >&2
(cd "$project" && CI=true "$NPM" ci --prefer-offline --ignore-scripts --no-audit --no-fund --loglevel=error </dev/null)

echo "fidelity-node: fetching the TLS test certificates of $CLIENT_MODULE@$CLIENT_VERSION" >&2
json=$("$GO" mod download -json "$CLIENT_MODULE@$CLIENT_VERSION")
moddir=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n1)
certs="$moddir/certs"
[[ -f "$certs/ca/ca.crt" && -f "$certs/node1/node.crt" && -f "$certs/node1/node.key" ]] ||
	fail "no certs/ca/ca.crt and certs/node1/node.{crt,key} in '$moddir'"

echo "fidelity-node: building the emulator" >&2
build_flags=()
if [[ "${FIDELITY_RACE:-}" == 1 ]]; then
	build_flags+=(-race)
fi
(cd "$root" && "$GO" build "${build_flags[@]}" -o "$work/kurrentdb-emulator" ./cmd/kurrentdb-emulator)

# Port 0 lets the kernel pick free ports; the emulator's "ready" log line
# says which. Debug level logs every RPC with its method, which shows the
# appends went through BatchAppend.
log="$work/emulator.log"
"$work/kurrentdb-emulator" \
	--listen 127.0.0.1:0 \
	--tls-listen 127.0.0.1:0 \
	--tls-cert "$certs/node1/node.crt" \
	--tls-key "$certs/node1/node.key" \
	--separate-stores \
	--advertise-host localhost \
	--log-level debug </dev/null >"$log" 2>&1 &
emulator_pid=$!
ready=""
for _ in $(seq 1 200); do
	kill -0 "$emulator_pid" 2>/dev/null || break
	ready=$(grep -m1 '"msg":"ready"' "$log" || true)
	[[ -n "$ready" ]] && break
	sleep 0.05
done
if [[ -z "$ready" ]]; then
	echo "fidelity-node: the emulator did not start; its log:" >&2
	cat "$log" >&2
	exit 1
fi
plain_port=$(printf '%s\n' "$ready" | sed -n 's/.*"uri":"kurrentdb:\/\/[^"]*:\([0-9][0-9]*\)?.*/\1/p')
tls_port=$(printf '%s\n' "$ready" | sed -n 's/.*"tls_uri":"kurrentdb:\/\/[^"]*:\([0-9][0-9]*\)?.*/\1/p')
[[ -n "$plain_port" && -n "$tls_port" ]] || fail "no ports in the emulator's ready line: $ready"
echo "fidelity-node: emulator on 127.0.0.1:$plain_port (plaintext) and localhost:$tls_port (TLS)" >&2

status=0
(
	cd "$project"
	export KURRENTDB_PLAIN="localhost:$plain_port" KURRENTDB_TLS="localhost:$tls_port" \
		KURRENTDB_CA="$certs/ca/ca.crt" CI=true
	# One file at a time: the $all tests assume nothing else appends meanwhile.
	exec "$NODE" --test --test-concurrency=1 --test-reporter=spec --test-timeout=60000 test/*.test.mjs </dev/null
) &
test_pid=$!
wait "$test_pid" || status=1
test_pid=""

if ! kill -0 "$emulator_pid" 2>/dev/null; then
	echo "fidelity-node: the emulator died during the run; its log:" >&2
	cat "$log" >&2
	status=1
elif grep -q '"level":"error"\|WARNING: DATA RACE' "$log"; then
	echo "fidelity-node: the emulator logged errors:" >&2
	grep -A30 '"level":"error"\|WARNING: DATA RACE' "$log" >&2
	status=1
fi
batch=$(grep -c '"method":"/event_store.client.streams.Streams/BatchAppend"' "$log" || true)
plain=$(grep -c '"method":"/event_store.client.streams.Streams/Append"' "$log" || true)
echo "fidelity-node: the emulator served $batch BatchAppend and $plain Append calls" >&2
if [[ "$batch" == 0 ]]; then
	echo "fidelity-node: the Node client never appended through BatchAppend" >&2
	status=1
fi

if [[ $status == 0 ]]; then
	echo "fidelity-node: PASS" >&2
else
	echo "fidelity-node: FAIL" >&2
fi
exit $status
