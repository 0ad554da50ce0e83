#!/usr/bin/env bash
# run.sh — start the whole Coffer suite.
#
#   ./run.sh               start locally, in the foreground (Ctrl-C stops it)
#   ./run.sh --detach      start locally in the background; logs in $DATA_DIR/run.log
#   ./run.sh stop          stop a detached local stack
#   ./run.sh docker [up|down|logs]   the docker compose stack (router on http://localhost)
#
# Locally, without Docker: builds bin/, installs redis-server if it is
# missing, starts nats-server (JetStream; the version pinned in go.mod) and
# redis-server where NATS_URL and REDIS_URL point unless a NATS or Redis
# already answers there, then wallet_writer, history_writer and wallet_server.
# Whatever it started and dies is restarted with backoff. Each line of output
# is prefixed with the process it came from. Stopping stops everything this
# script started, and nothing else. Data lives in DATA_DIR and survives a
# restart.
#
#   HTTP_ADDR=127.0.0.1:18080 DATA_DIR=/tmp/coffer ./run.sh
#   PARTITION_COUNT=4 ./run.sh   partitioned: nats-server maps each wallet's
#                                commands to one of 4 partitions; the writer
#                                serves all of them (WRITER_PARTITIONS)
set -euo pipefail
cd "$(dirname "$0")"

: "${HTTP_ADDR:=:8080}"
: "${NATS_URL:=nats://127.0.0.1:4222}"
: "${REDIS_URL:=redis://127.0.0.1:6379/0}"
: "${DATA_DIR:=./data}"
mkdir -p "$DATA_DIR"
DATA_DIR=$(cd "$DATA_DIR" && pwd)
export HTTP_ADDR NATS_URL REDIS_URL DATA_DIR
pidfile="$DATA_DIR/run.pid"

say() { printf '[run.sh] %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

# host and port of a URL such as nats://127.0.0.1:4222 or redis://:pw@host:6379/0
url_host() { [[ $1 =~ ^[a-z]+://([^@/]*@)?([^:/]+):([0-9]+) ]] && echo "${BASH_REMATCH[2]}"; }
url_port() { [[ $1 =~ ^[a-z]+://([^@/]*@)?([^:/]+):([0-9]+) ]] && echo "${BASH_REMATCH[3]}"; }
answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# is_nats HOST PORT: a NATS server greets every connection with INFO.
is_nats() {
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"; IFS= read -r -t 2 line <&3; [[ $line == INFO* ]]' _ "$1" "$2" 2>/dev/null
}
# is_redis HOST PORT: Redis answers PING with +PONG (or an auth error).
is_redis() {
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"; printf "PING\r\n" >&3; IFS= read -r -t 2 line <&3; [[ $line == +PONG* || $line == -NOAUTH* ]]' _ "$1" "$2" 2>/dev/null
}

wait_port() { # host port what
	for _ in $(seq 1 100); do
		answers "$1" "$2" && return 0
		sleep 0.1
	done
	die "$3 did not start listening on $1:$2"
}

http_host=${HTTP_ADDR%:*}
http_port=${HTTP_ADDR##*:}
if [ -z "$http_host" ] || [ "$http_host" = "0.0.0.0" ]; then http_host=127.0.0.1; fi
base="http://$http_host:$http_port"

http_must_be_free() {
	if answers "$http_host" "$http_port"; then
		die "HTTP_ADDR $HTTP_ADDR is taken by another process; stop it or choose another HTTP_ADDR"
	fi
}

# ready URL: GET URL/readyz answers 200 (plain bash, no curl needed).
ready() {
	local host=$1 port=$2 status
	exec 3<>"/dev/tcp/$host/$port" || return 1
	printf 'GET /readyz HTTP/1.0\r\nHost: %s\r\n\r\n' "$host" >&3
	read -r status <&3 || true
	exec 3<&-
	[[ $status == *" 200 "* ]]
}
wait_ready() { # host port seconds
	for _ in $(seq 1 $(($3 * 10))); do
		ready "$1" "$2" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

running_pid() {
	[ -f "$pidfile" ] || return 1
	local pid
	pid=$(cat "$pidfile")
	kill -0 "$pid" 2>/dev/null && echo "$pid"
}

docker_compose() {
	if docker compose version >/dev/null 2>&1; then
		docker compose "$@"
	elif command -v docker-compose >/dev/null; then
		docker-compose "$@"
	else
		die "docker compose is not installed; install Docker, or run ./run.sh without 'docker' for the local stack"
	fi
}

case "${1:-}" in
stop)
	pid=$(running_pid) || {
		say "no detached stack is running for DATA_DIR=$DATA_DIR"
		exit 0
	}
	say "stopping the stack (pid $pid)"
	kill -TERM "$pid"
	for _ in $(seq 1 600); do
		kill -0 "$pid" 2>/dev/null || {
			say "stopped"
			exit 0
		}
		sleep 0.1
	done
	die "the stack (pid $pid) did not stop within 60s"
	;;
docker)
	case "${2:-up}" in
	up)
		docker_compose up -d --build
		say "waiting for the stack to be ready at http://localhost"
		wait_ready 127.0.0.1 80 120 || die "the stack did not become ready; see ./run.sh docker logs"
		say "Coffer is ready at http://localhost  (./run.sh docker down stops it; volumes are kept)"
		;;
	down) docker_compose down ;;
	logs) docker_compose logs -f ;;
	*) die "usage: $0 docker [up|down|logs]" ;;
	esac
	exit 0
	;;
--detach | -d)
	if pid=$(running_pid); then die "a stack is already running for DATA_DIR=$DATA_DIR (pid $pid); ./run.sh stop first"; fi
	# Checked here too: "ready" must come from the stack started now.
	http_must_be_free
	say "starting in the background; logs in $DATA_DIR/run.log"
	setsid nohup "$0" >"$DATA_DIR/run.log" 2>&1 </dev/null &
	child=$!
	for _ in $(seq 1 600); do
		if wait_ready "$http_host" "$http_port" 1; then
			say "Coffer is ready at $base  (./run.sh stop stops it)"
			exit 0
		fi
		kill -0 "$child" 2>/dev/null || break
	done
	tail -n 20 "$DATA_DIR/run.log" >&2
	die "the stack did not become ready; see $DATA_DIR/run.log"
	;;
"") ;;
*)
	echo "usage: $0 [--detach | stop | docker [up|down|logs]]" >&2
	exit 2
	;;
esac

# --- the local stack, in the foreground ---

if pid=$(running_pid); then die "a stack is already running for DATA_DIR=$DATA_DIR (pid $pid); ./run.sh stop first"; fi
http_must_be_free
nats_host=$(url_host "$NATS_URL") || die "NATS_URL $NATS_URL: want nats://host:port"
nats_port=$(url_port "$NATS_URL")
start_nats=1
if answers "$nats_host" "$nats_port"; then
	is_nats "$nats_host" "$nats_port" || die "port $nats_port on $nats_host is taken by something that is not NATS; stop it or set NATS_URL"
	say "using the NATS server already answering at $nats_host:$nats_port"
	start_nats=0
fi
start_redis=0
if [[ $REDIS_URL == unix://* || $REDIS_URL == *master_name=* || $REDIS_URL == redis*-cluster://* ]]; then
	say "using the Redis server at $REDIS_URL"
else
	redis_host=$(url_host "$REDIS_URL") || die "REDIS_URL $REDIS_URL: want redis://host:port/db"
	redis_port=$(url_port "$REDIS_URL")
	start_redis=1
	if answers "$redis_host" "$redis_port"; then
		is_redis "$redis_host" "$redis_port" || die "port $redis_port on $redis_host is taken by something that is not Redis; stop it or set REDIS_URL"
		say "using the Redis server already answering at $redis_host:$redis_port"
		start_redis=0
	fi
fi
for admin in WALLET_WRITER_ADMIN_ADDR:127.0.0.1:9091 HISTORY_WRITER_ADMIN_ADDR:127.0.0.1:9092; do
	var=${admin%%:*}
	: "${!var:=${admin#*:}}"
	export "${var?}"
	addr=${!var}
	if answers "${addr%:*}" "${addr##*:}"; then
		die "$var $addr is taken by another process; stop it or set $var"
	fi
done

# Partitions: the server-side mapping that sends each wallet's commands to
# its partition, and one writer process owning every partition unless
# WRITER_PARTITIONS says otherwise.
PARTITION_COUNT=${PARTITION_COUNT:-1}
[[ "$PARTITION_COUNT" =~ ^[1-9][0-9]*$ ]] || die "PARTITION_COUNT=$PARTITION_COUNT: want a whole number of at least 1"
export PARTITION_COUNT
nats_conf=()
if [ "$PARTITION_COUNT" -gt 1 ]; then
	mkdir -p "$DATA_DIR"
	nats_conf=(-c "$DATA_DIR/nats-partitions.conf")
	: "${WRITER_PARTITIONS:=$(seq -s, 0 $((PARTITION_COUNT - 1)))}"
	export WRITER_PARTITIONS
	[ "$start_nats" -eq 1 ] || say "PARTITION_COUNT=$PARTITION_COUNT: the NATS server at $NATS_URL must map commands to partitions (see $DATA_DIR/nats-partitions.conf)"
fi

# On a machine of two cores or fewer, the processes of the stack compete for
# the same cores, and a Go process with two Ps wakes threads on both for
# every burst of work. nats-server, wallet_writer and history_writer do
# mostly serial work and get one P each (wallet_server keeps both: balance
# reads use them). Measured on 2 cores (BENCHMARKS.md entry 13): 8-17% more
# spread writes per second and less CPU per write in every process. A
# GOMAXPROCS set by the caller applies to every process instead.
one_p=()
if [ -z "${GOMAXPROCS:-}" ] && [ "$(nproc)" -le 2 ]; then
	one_p=(GOMAXPROCS=1)
	say "$(nproc) cores: nats-server, wallet_writer and history_writer run with GOMAXPROCS=1"
fi

./build.sh deps
./build.sh bin
if [ "$PARTITION_COUNT" -gt 1 ]; then
	# The mapping is written in one place, the code (wallet_writer
	# partitions-conf); the writers serve what it maps to.
	bin/wallet_writer partitions-conf >"$DATA_DIR/nats-partitions.conf"
fi

echo $$ >"$pidfile"
pids=()
names=()

# supervise NAME CMD...: run CMD with its output prefixed by NAME and restart
# it with backoff (1s doubling to 30s) whenever it dies (exits non-zero or is
# killed). A clean exit (status 0, as after Ctrl-C) is a stop, not a crash.
# TERM stops it.
supervise() {
	local name=$1
	shift
	local delay=1 child=0 rc started
	trap 'kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 0' TERM INT
	while :; do
		started=$SECONDS
		# The prefixer ignores Ctrl-C so a service still has somewhere to
		# write while it shuts down.
		"$@" > >(trap '' INT TERM && exec sed -u "s/^/[$name] /") 2>&1 &
		child=$!
		rc=0
		wait "$child" || rc=$?
		if [ "$rc" -eq 0 ]; then
			say "$name stopped"
			exit 0
		fi
		if ((SECONDS - started >= 30)); then delay=1; fi
		say "$name exited with status $rc; restarting in ${delay}s"
		sleep "$delay" &
		wait $! || true
		delay=$((delay * 2 > 30 ? 30 : delay * 2))
	done
}

start() { # name cmd...
	supervise "$@" &
	pids+=("$!")
	names+=("$1")
}

stop_all() {
	trap - INT TERM EXIT
	local i pid
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		pid=${pids[i]}
		kill -0 "$pid" 2>/dev/null || continue
		say "stopping ${names[i]}"
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 300); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -f "$pidfile"
	say "stopped"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$start_nats" -eq 1 ]; then
	mkdir -p "$DATA_DIR/nats"
	start nats-server env "${one_p[@]}" bin/nats-server -a "$nats_host" -p "$nats_port" -js -sd "$DATA_DIR/nats" -n coffer-local "${nats_conf[@]}"
	wait_port "$nats_host" "$nats_port" nats-server
fi
if [ "$start_redis" -eq 1 ]; then
	mkdir -p "$DATA_DIR/redis"
	start redis-server redis-server --bind "$redis_host" --port "$redis_port" --dir "$DATA_DIR/redis" \
		--appendonly yes --save "" --daemonize no
	wait_port "$redis_host" "$redis_port" redis-server
fi

start wallet_writer env "${one_p[@]}" ADMIN_ADDR="$WALLET_WRITER_ADMIN_ADDR" bin/wallet_writer
start history_writer env "${one_p[@]}" ADMIN_ADDR="$HISTORY_WRITER_ADMIN_ADDR" bin/history_writer
start wallet_server env ADMIN_ADDR="${WALLET_SERVER_ADMIN_ADDR:-}" bin/wallet_server

if wait_ready "$http_host" "$http_port" 30; then
	say "Coffer is ready at $base  (data in $DATA_DIR; Ctrl-C stops it)"
else
	say "Coffer is starting at $base but is not ready yet; see the logs above"
fi

# The supervisors run until we are told to stop.
while :; do
	wait || true
	for pid in "${pids[@]}"; do
		kill -0 "$pid" 2>/dev/null && continue 2
	done
	exit 1
done
