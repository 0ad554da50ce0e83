#!/usr/bin/env bash
# run.sh — start the whole Coffer suite on this machine, without Docker.
#
# Builds bin/, installs redis-server if it is missing, starts nats-server (with
# JetStream, the version pinned in go.mod) and redis-server where NATS_URL and
# REDIS_URL point unless something already answers there, then wallet_writer,
# history_writer and wallet_server. Ctrl-C or SIGTERM stops everything this
# script started, and nothing else. Data lives in DATA_DIR and survives a
# restart.
#
#   HTTP_ADDR=127.0.0.1:18080 DATA_DIR=/tmp/coffer ./run.sh
set -euo pipefail
cd "$(dirname "$0")"

: "${HTTP_ADDR:=:8080}"
: "${NATS_URL:=nats://127.0.0.1:4222}"
: "${REDIS_URL:=redis://127.0.0.1:6379/0}"
: "${DATA_DIR:=./data}"
mkdir -p "$DATA_DIR"
DATA_DIR=$(cd "$DATA_DIR" && pwd)
export HTTP_ADDR NATS_URL REDIS_URL DATA_DIR

say() { printf '[run.sh] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# host and port of a URL such as nats://127.0.0.1:4222 or redis://:pw@host:6379/0
url_host() { [[ $1 =~ ^[a-z]+://([^@/]*@)?([^:/]+):([0-9]+) ]] && echo "${BASH_REMATCH[2]}"; }
url_port() { [[ $1 =~ ^[a-z]+://([^@/]*@)?([^:/]+):([0-9]+) ]] && echo "${BASH_REMATCH[3]}"; }
answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() { # host port what
	for _ in $(seq 1 100); do
		answers "$1" "$2" && return 0
		sleep 0.1
	done
	die "$3 did not start listening on $1:$2"
}

http_host=${HTTP_ADDR%:*}
http_port=${HTTP_ADDR##*:}
[ -z "$http_host" ] || [ "$http_host" = "0.0.0.0" ] && http_host=127.0.0.1
if answers "$http_host" "$http_port"; then
	die "HTTP_ADDR $HTTP_ADDR is already taken by another process; stop it or set HTTP_ADDR"
fi

./build.sh deps
./build.sh bin

pids=()
names=()
stopping=0

# start NAME CMD... runs CMD in the background with its output prefixed by NAME.
start() {
	local name=$1
	shift
	"$@" > >(sed -u "s/^/[$name] /") 2>&1 &
	pids+=("$!")
	names+=("$name")
}

stop_all() {
	stopping=1
	trap - INT TERM EXIT
	local i pid
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		pid=${pids[i]}
		kill -0 "$pid" 2>/dev/null || continue
		say "stopping ${names[i]}"
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 150); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	say "stopped"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

nats_host=$(url_host "$NATS_URL") || die "NATS_URL $NATS_URL: want nats://host:port"
nats_port=$(url_port "$NATS_URL")
if answers "$nats_host" "$nats_port"; then
	say "using the NATS server already answering at $nats_host:$nats_port"
else
	mkdir -p "$DATA_DIR/nats"
	start nats-server bin/nats-server -a "$nats_host" -p "$nats_port" -js -sd "$DATA_DIR/nats" -n coffer-local
	wait_port "$nats_host" "$nats_port" nats-server
fi

if [[ $REDIS_URL == unix://* ]]; then
	say "using the Redis server at $REDIS_URL"
else
	redis_host=$(url_host "$REDIS_URL") || die "REDIS_URL $REDIS_URL: want redis://host:port/db"
	redis_port=$(url_port "$REDIS_URL")
	if answers "$redis_host" "$redis_port"; then
		say "using the Redis server already answering at $redis_host:$redis_port"
	else
		mkdir -p "$DATA_DIR/redis"
		start redis-server redis-server --bind "$redis_host" --port "$redis_port" --dir "$DATA_DIR/redis" \
			--appendonly yes --save "" --daemonize no
		wait_port "$redis_host" "$redis_port" redis-server
	fi
fi

start wallet_writer bin/wallet_writer
start history_writer bin/history_writer
start wallet_server bin/wallet_server

base="http://$http_host:$http_port"
ready() {
	exec 3<>"/dev/tcp/$http_host/$http_port" || return 1
	printf 'GET /readyz HTTP/1.0\r\nHost: %s\r\n\r\n' "$http_host" >&3
	local status
	read -r status <&3 || true
	exec 3<&-
	[[ $status == *" 200 "* ]]
}
for _ in $(seq 1 300); do
	ready 2>/dev/null && break
	sleep 0.1
done
if ready 2>/dev/null; then
	say "Coffer is ready at $base  (data in $DATA_DIR; Ctrl-C stops it)"
else
	say "Coffer is starting at $base but is not ready yet; see the logs above"
fi

# Run until a signal, or until one of the processes we started exits.
while :; do
	wait -n "${pids[@]}" || true
	for i in "${!pids[@]}"; do
		if ! kill -0 "${pids[i]}" 2>/dev/null; then
			[ "$stopping" -eq 1 ] || say "${names[i]} exited; stopping the suite"
			exit 1
		fi
	done
done
