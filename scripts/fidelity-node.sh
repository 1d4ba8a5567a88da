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
name=fidelity-node
# shellcheck source=scripts/fidelity-lib.sh
. "$root/scripts/fidelity-lib.sh"

command -v "$NODE" >/dev/null || fail "node not found (set NODE); Node.js >= 20 is needed"
command -v "$NPM" >/dev/null || fail "npm not found (set NPM)"
node_major=$("$NODE" -p 'process.versions.node.split(".")[0]')
[[ "$node_major" -ge 20 ]] || fail "Node.js $("$NODE" --version) is too old; >= 20 is needed"

# No package needs its install script: the client's native bridge comes as
# prebuilt per-platform packages, picked by their os/cpu/libc fields.
echo "fidelity-node: npm ci in fidelity/node" >&2
(cd "$project" && CI=true "$NPM" ci --prefer-offline --ignore-scripts --no-audit --no-fund --loglevel=error </dev/null)

echo "fidelity-node: fetching the TLS test certificates of $CLIENT_MODULE@$CLIENT_VERSION" >&2
moddir=$(client_module_dir)
certs="$moddir/certs"
[[ -f "$certs/ca/ca.crt" && -f "$certs/node1/node.crt" && -f "$certs/node1/node.key" ]] ||
	fail "no certs/ca/ca.crt and certs/node1/node.{crt,key} in '$moddir'"

build_emulator

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
pids+=("$emulator_pid")
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

check_emulator "$emulator_pid" "$log" || status=1
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
