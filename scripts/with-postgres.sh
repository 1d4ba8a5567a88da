#!/usr/bin/env bash
# Runs a command with a PostgreSQL server for the tests (make test runs the test suite with it):
#
#   scripts/with-postgres.sh go test ./...
#
# - PROJECTOR_TEST_DATABASE_URL set: the command runs against that server, as it is.
# - Otherwise, when a server answers on PROJECTOR_TEST_POSTGRES_ADDR (default 127.0.0.1:5432, the
#   tests' default server), the command runs against it.
# - Otherwise a throwaway cluster is started: initdb and pg_ctl in a temporary directory, on a
#   free port of 127.0.0.1, trust authentication for user postgres, with a database named test.
#   The command gets its URL in PROJECTOR_TEST_DATABASE_URL; the cluster is stopped and its
#   directory removed when the command ends, fails or is interrupted. initdb refuses to run as
#   root, so as root the cluster runs as the postgres user.
# - Without the server programs (initdb, pg_ctl), it says what to install and exits 1.
#
# The server programs are looked for in PROJECTOR_TEST_POSTGRES_BINDIR when it is set, else in
# PATH and then in the newest /usr/lib/postgresql/<version>/bin (where Debian puts them).
# Exits with the command's status.
set -euo pipefail

name=with-postgres
probe_addr=${PROJECTOR_TEST_POSTGRES_ADDR:-127.0.0.1:5432}

if [[ $# -eq 0 ]]; then
	echo "usage: $0 COMMAND [ARG...]" >&2
	exit 2
fi

# answers HOST:PORT: whether something accepts TCP connections there.
answers() {
	local host=${1%:*} port=${1##*:}
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
}

if [[ -n "${PROJECTOR_TEST_DATABASE_URL:-}" ]]; then
	exec "$@"
fi
if answers "$probe_addr"; then
	export PROJECTOR_TEST_DATABASE_URL="postgres://postgres@$probe_addr/test?sslmode=disable"
	exec "$@"
fi

# bindir: prints the directory that holds initdb and pg_ctl, or fails.
bindir() {
	local dir
	if [[ -n "${PROJECTOR_TEST_POSTGRES_BINDIR:-}" ]]; then
		dir=$PROJECTOR_TEST_POSTGRES_BINDIR
		[[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && { echo "$dir"; return; }
		return 1
	fi
	if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
		# The directory of the programs themselves, where createdb and postgres are too.
		dirname "$(readlink -f "$(command -v initdb)")"
		return
	fi
	for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		[[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && { echo "$dir"; return; }
	done
	return 1
}

# install_hint: the command that installs the PostgreSQL server on this system.
install_hint() {
	if command -v apt-get >/dev/null; then
		echo "apt-get install postgresql"
	elif command -v dnf >/dev/null; then
		echo "dnf install postgresql-server"
	elif command -v brew >/dev/null; then
		echo "brew install postgresql"
	else
		echo "the PostgreSQL server package of your system (it provides initdb and pg_ctl)"
	fi
}

if ! bin=$(bindir); then
	where="PATH and /usr/lib/postgresql/*/bin"
	[[ -n "${PROJECTOR_TEST_POSTGRES_BINDIR:-}" ]] && where=$PROJECTOR_TEST_POSTGRES_BINDIR
	{
		echo "$name: the tests need PostgreSQL: nothing answers on $probe_addr, PROJECTOR_TEST_DATABASE_URL is not set,"
		echo "$name: and the server programs to start a throwaway one (initdb, pg_ctl) are not in $where."
		echo "$name: install them:  $(install_hint)"
		echo "$name: or point PROJECTOR_TEST_DATABASE_URL at a server with trust authentication for user postgres."
	} >&2
	exit 1
fi

# As root, the cluster belongs to the postgres user.
as_owner=()
if [[ $(id -u) -eq 0 ]]; then
	if ! id postgres >/dev/null 2>&1; then
		echo "$name: initdb refuses to run as root and there is no postgres user to run it as; create one (useradd --system postgres) or run as another user" >&2
		exit 1
	fi
	as_owner=(runuser -u postgres --)
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/projector-pg.XXXXXX")
chmod 755 "$dir"
[[ ${#as_owner[@]} -gt 0 ]] && chown postgres: "$dir"
cmd_pid=""
started=""

# kill_tree PID: ends PID and every process below it (go test runs the test binaries as its
# children, and they ignore SIGINT as commands started in the background do).
kill_tree() {
	local child
	for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		kill_tree "$child"
	done
	kill -TERM "$1" 2>/dev/null || true
}

cleanup() {
	local status=$?
	trap - EXIT INT TERM
	if [[ -n "$cmd_pid" ]]; then
		kill_tree "$cmd_pid"
		wait "$cmd_pid" 2>/dev/null || true
	fi
	if [[ -n "$started" ]]; then
		"${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
		echo "$name: stopped the throwaway PostgreSQL on port $port" >&2
	fi
	rm -rf "$dir"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "$name: nothing answers on $probe_addr; starting a throwaway PostgreSQL ($bin) in $dir" >&2
if ! "${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1; then
	echo "$name: initdb failed:" >&2
	cat "$dir/initdb.log" >&2
	exit 1
fi

# A free port: a random one that nothing answers on; pg_ctl fails if it was taken meanwhile, and
# the next one is tried.
for attempt in 1 2 3 4 5; do
	port=$((20000 + RANDOM % 40000))
	answers "127.0.0.1:$port" && continue
	if "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
		start >/dev/null 2>&1; then
		started=1
		break
	fi
	if [[ $attempt -eq 5 ]]; then
		echo "$name: the throwaway PostgreSQL did not start; its log:" >&2
		cat "$dir/postgres.log" >&2
		exit 1
	fi
done

"${as_owner[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres test
export PROJECTOR_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/test?sslmode=disable"
echo "$name: PROJECTOR_TEST_DATABASE_URL=$PROJECTOR_TEST_DATABASE_URL" >&2

# In the background, so that a signal to this script is handled at once.
"$@" &
cmd_pid=$!
status=0
wait "$cmd_pid" || status=$?
cmd_pid=""
exit "$status"
