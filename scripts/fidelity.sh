#!/usr/bin/env bash
# Fidelity check of the KurrentDB emulator: runs the official Go client's own
# integration suites against the emulator binary, on the ports and with the
# certificates the client's fixtures expect (2114 plaintext, 2115 TLS), then
# the client's TLS suite (TestTLS) against three TLS nodes on 2111-2113, each
# with its own certificate and answering gossip as a leader.
#
#   scripts/fidelity.sh            # or: make fidelity
#
# Environment: GO (go binary), CLIENT_VERSION (default v1.4.2), FIDELITY_RUN
# (override the TestStreams -run pattern), FIDELITY_TLS=0 to skip TestTLS,
# FIDELITY_RACE=1 to build the
# emulator with the race detector, KEEP_WORKDIR=1 to keep the temporary
# directory. Exits non-zero when any test fails, and when a suite's -run pattern
# (or an alternative of its last group) ran no test.
set -euo pipefail

GO=${GO:-go}
CLIENT_MODULE=github.com/kurrent-io/KurrentDB-Client-Go
CLIENT_VERSION=${CLIENT_VERSION:-v1.4.2}
PLAIN_ADDR=127.0.0.1:2114
TLS_ADDR=127.0.0.1:2115
STREAMS_RUN=${FIDELITY_RUN:-'TestStreams/(AppendEvents|MultiAppend|ReadStream|ReadAll|Subscription|Delete|Connection|SecureAuthentication|InsecureAuthentication)$'}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/kurrentdb-fidelity.XXXXXX")
name=fidelity
# shellcheck source=scripts/fidelity-lib.sh
. "$root/scripts/fidelity-lib.sh"

echo "fidelity: fetching $CLIENT_MODULE@$CLIENT_VERSION" >&2
moddir=$(client_module_dir)

# The module cache is read-only, and go test may need to write (go.sum
# updates), so the suites run from a writable copy.
client="$work/client"
if [[ -w "$moddir" ]]; then
	client=$moddir
else
	cp -R "$moddir" "$client"
	chmod -R u+w "$client"
fi

build_emulator

port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start_emulator LOG PORT... ARGS: starts the binary with ARGS, logging to
# LOG, and waits until every PORT accepts connections.
start_emulator() {
	local log=$1
	shift
	local ports=()
	while [[ $1 =~ ^[0-9]+$ ]]; do
		ports+=("$1")
		shift
	done
	local port
	for port in "${ports[@]}"; do
		if ! port_free "$port"; then
			echo "fidelity: port $port is already in use; stop whatever listens there first" >&2
			exit 1
		fi
	done
	"$work/kurrentdb-emulator" "$@" --log-level warn </dev/null >"$log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		local up=1
		for port in "${ports[@]}"; do
			port_free "$port" && up=""
		done
		[[ -n "$up" ]] && return 0
		sleep 0.1
	done
	echo "fidelity: the emulator did not start; its log:" >&2
	cat "$log" >&2
	exit 1
}

echo "fidelity: starting the emulator on $PLAIN_ADDR (plaintext) and $TLS_ADDR (TLS)" >&2
start_emulator "$work/emulator.log" "${PLAIN_ADDR##*:}" "${TLS_ADDR##*:}" \
	--listen "$PLAIN_ADDR" \
	--tls-listen "$TLS_ADDR" \
	--tls-cert "$client/certs/node1/node.crt" \
	--tls-key "$client/certs/node1/node.key" \
	--separate-stores \
	--advertise-host localhost

run_suite() {
	local name=$1 pattern=$2 log="$work/$1.log"
	echo "fidelity: go test ./test -run '$pattern'" >&2
	# In the background, so that a signal to this script is handled at once.
	: >"$log"
	(cd "$client" && CI=true "$GO" test ./test -run "$pattern" -count=1 -v -timeout 15m </dev/null >"$log" 2>&1) &
	test_pid=$!
	tail -n +1 -f --pid="$test_pid" "$log" 2>/dev/null &
	local tail_pid=$!
	local rc=0
	wait "$test_pid" || rc=$?
	test_pid=""
	wait "$tail_pid" 2>/dev/null || true
	local passed failed skipped
	passed=$(grep -c -- '--- PASS' "$log" || true)
	failed=$(grep -c -- '--- FAIL' "$log" || true)
	skipped=$(grep -c -- '--- SKIP' "$log" || true)
	echo "fidelity: $name: $passed passed, $failed failed, $skipped skipped (exit $rc)" >&2
	if [[ "$skipped" != 0 ]]; then
		echo "fidelity: $name: skipped tests:" >&2
		grep -- '--- SKIP' "$log" | sed 's/^[[:space:]]*/  /' >&2
	fi
	if [[ "$failed" != 0 ]]; then
		echo "fidelity: $name: failed tests:" >&2
		grep -- '--- FAIL' "$log" | sed 's/^[[:space:]]*/  /' >&2
	fi
	if [[ $rc != 0 || "$failed" != 0 ]]; then
		return 1
	fi
	check_ran "$log" "$pattern" "fidelity: $name"
}

# check_logs LOG...: fails the run when an emulator (of pids, in the order of
# its LOG) died or logged an error or a data race.
check_logs() {
	local log i=0
	for log in "$@"; do
		check_emulator "${pids[$i]}" "$log" || status=1
		i=$((i + 1))
	done
}

status=0
run_suite streams "$STREAMS_RUN" || status=1
run_suite misc 'TestMisc' || status=1
check_logs "$work/emulator.log"
stop_emulators

if [[ "${FIDELITY_TLS:-1}" != 0 ]]; then
	echo "fidelity: starting three TLS nodes on 2111-2113 for TestTLS" >&2
	node_logs=()
	for n in 1 2 3; do
		start_emulator "$work/node$n.log" "211$n" \
			--listen 127.0.0.1:0 \
			--tls-listen "127.0.0.1:211$n" \
			--tls-cert "$client/certs/node$n/node.crt" \
			--tls-key "$client/certs/node$n/node.key" \
			--advertise-host localhost
		node_logs+=("$work/node$n.log")
	done
	run_suite tls 'TestTLS' || status=1
	check_logs "${node_logs[@]}"
	stop_emulators
fi

if [[ $status == 0 ]]; then
	echo "fidelity: PASS" >&2
else
	echo "fidelity: FAIL" >&2
fi
exit $status
