# Shared parts of scripts/fidelity.sh and scripts/fidelity-node.sh, which
# source this file after setting:
#   name  the prefix of their messages ("fidelity", "fidelity-node")
#   work  their temporary directory
#   root  the repository's root
#   GO, CLIENT_MODULE, CLIENT_VERSION
# It keeps the emulators started in pids and the running test command in
# test_pid, and installs the traps that end both and remove work on exit.

pids=()
test_pid=""

# fail MESSAGE: prints MESSAGE and exits 1.
fail() {
	echo "$name: $*" >&2
	exit 1
}

# kill_tree PID: ends PID and every process below it (node --test, for one,
# runs each test file in a child process).
kill_tree() {
	local child
	for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		kill_tree "$child"
	done
	kill -TERM "$1" 2>/dev/null || true
}

# stop_emulators ends every emulator in pids: SIGTERM, then SIGKILL after
# 5 s.
stop_emulators() {
	local pid
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	pids=()
}

# cleanup, on exit: ends the test command and the emulators, and removes the
# work directory unless KEEP_WORKDIR=1.
cleanup() {
	local status=$?
	if [[ -n "$test_pid" ]]; then
		kill_tree "$test_pid"
		wait "$test_pid" 2>/dev/null || true
	fi
	stop_emulators
	if [[ "${KEEP_WORKDIR:-}" == 1 ]]; then
		echo "$name: work directory kept at $work" >&2
	else
		chmod -R u+w "$work" 2>/dev/null || true
		rm -rf "$work"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# client_module_dir: prints the directory of $CLIENT_MODULE@$CLIENT_VERSION
# in the module cache, downloading it when needed.
client_module_dir() {
	local json dir
	json=$("$GO" mod download -json "$CLIENT_MODULE@$CLIENT_VERSION")
	dir=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n1)
	if [[ -z "$dir" || ! -d "$dir" ]]; then
		echo "$name: could not locate the module directory in:" >&2
		printf '%s\n' "$json" >&2
		exit 1
	fi
	printf '%s\n' "$dir"
}

# build_emulator: builds the emulator binary as $work/kurrentdb-emulator,
# with the race detector when FIDELITY_RACE=1.
build_emulator() {
	echo "$name: building the emulator" >&2
	local build_flags=()
	if [[ "${FIDELITY_RACE:-}" == 1 ]]; then
		build_flags+=(-race)
	fi
	(cd "$root" && "$GO" build "${build_flags[@]}" -o "$work/kurrentdb-emulator" ./cmd/kurrentdb-emulator)
}

# run_path_depth PATTERN: prints how many /-separated elements the go test -run PATTERN has
# (slashes inside brackets or parentheses do not separate, as in go test).
run_path_depth() {
	awk -v p="$1" 'BEGIN {
		d = 1; nest = 0
		for (i = 1; i <= length(p); i++) {
			c = substr(p, i, 1)
			if (c == "\\") { i++; continue }
			if (c == "(" || c == "[") nest++
			else if ((c == ")" || c == "]") && nest > 0) nest--
			else if (c == "/" && nest == 0) d++
		}
		print d
	}'
}

# check_ran LOG PATTERN [LABEL]: fails (status 1, naming PATTERN; messages start with LABEL,
# by default $name) when the go test -v output LOG of a
# run with -run PATTERN shows no test that passed or failed at the pattern's depth: a pattern
# that matches nothing (a renamed test, a typo) must not pass as an empty success. For a
# pattern ending in a group of alternatives, TestX/(A|B|C)$, each alternative must match a
# test of its own.
check_ran() {
	local log=$1 pattern=$2 label=${3:-$name} depth names
	depth=$(run_path_depth "$pattern")
	names=$(grep -oE -- '--- (PASS|FAIL): [^ ]+' "$log" | awk '{ print $3 }' |
		awk -F/ -v d="$depth" 'NF >= d { e = $1; for (i = 2; i <= d; i++) e = e "/" $i; print e }' | sort -u)
	if [[ -z "$names" ]]; then
		echo "$label: -run '$pattern' ran no test: it matches none of the suite's tests (renamed or misspelled?)" >&2
		return 1
	fi
	local last=${pattern##*/} alt missing=()
	last=${last#^}
	last=${last%\$}
	if [[ $last =~ ^\(([A-Za-z0-9_|]+)\)$ ]]; then
		local IFS='|'
		for alt in ${BASH_REMATCH[1]}; do
			printf '%s\n' "$names" | awk -F/ '{ print $NF }' | grep -qx -- "$alt" || missing+=("$alt")
		done
		unset IFS
		if [[ ${#missing[@]} -gt 0 ]]; then
			echo "$label: -run '$pattern': no test ran for ${missing[*]} (renamed or misspelled?)" >&2
			return 1
		fi
	fi
}

# check_emulator PID LOG: fails (status 1, with the log) when the emulator
# PID died during the run or LOG holds an error or a data race.
check_emulator() {
	local pid=$1 log=$2
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "$name: an emulator died during the run; its log ($log):" >&2
		cat "$log" >&2
		return 1
	fi
	if grep -q '"level":"error"\|WARNING: DATA RACE' "$log"; then
		echo "$name: an emulator logged errors ($log):" >&2
		grep -A30 '"level":"error"\|WARNING: DATA RACE' "$log" >&2
		return 1
	fi
}
