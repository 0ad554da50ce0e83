#!/usr/bin/env bash
# build.sh — build and check Coffer.
#
#   ./build.sh          install missing prerequisites, check formatting, vet, build bin/
#   ./build.sh test     the same, then every test: utils/ unit tests, and go test -race ./...
#   ./build.sh deps     only install what running the suite needs (redis-server)
#   ./build.sh fuzz [T] run each fuzz target for T: a duration (default 2m) or a count (500000x); the test run counts
#   ./build.sh faults [N]  the long fault suite: N kill -9 cycles of the writer (default 300)
#   ./build.sh bench [-d 10s]  measure this machine (installs wrk) and rewrite BENCHMARKS.md
#
# A fresh machine needs only Go and Debian's package tools: this script
# installs the rest (redis-server; for the tests also python3, docker-compose, sqlite3, chromium).
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '==> %s\n' "$*" >&2; }

apt_install() {
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	log "installing $*"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# deps [test]: what running the suite needs (redis-server); with "test", also
# what the tests need (python3 for utils/, docker-compose to check the compose
# file, sqlite3 for the fault suite's lock holders, chromium for the
# console's browser test).
deps() {
	command -v go >/dev/null || { echo "Go is required: https://go.dev/dl/" >&2; exit 1; }
	local missing=()
	command -v redis-server >/dev/null || missing+=(redis-server)
	if [ "${1:-}" = test ]; then
		command -v python3 >/dev/null || missing+=(python3)
		command -v docker-compose >/dev/null || missing+=(docker-compose)
		command -v sqlite3 >/dev/null || missing+=(sqlite3)
		command -v chromium >/dev/null || missing+=(chromium)
	fi
	[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

check() {
	log "gofmt"
	local unformatted
	unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*'))
	if [ -n "$unformatted" ]; then
		echo "gofmt needed on:" >&2
		echo "$unformatted" >&2
		exit 1
	fi
	log "go vet"
	go vet ./...
}

build() {
	log "building static binaries into bin/"
	mkdir -p bin
	CGO_ENABLED=0 go build -trimpath -o bin/ ./services/wallet_server ./services/wallet_writer ./services/history_writer
	# The NATS server the suite runs locally is the one pinned in go.mod.
	CGO_ENABLED=0 go build -trimpath -o bin/nats-server github.com/nats-io/nats-server/v2
}

# fuzz BUDGET: each fuzz target, from the committed seed corpus
# (pkg/*/testdata/fuzz) plus what the fuzzer finds, for BUDGET: a duration
# (2m) or a number of inputs (500000x); "short" is the test run's, a count
# per target of about ten seconds here. The test run counts because Go 1.26's
# fuzzer can fail a run bounded by time with "context deadline exceeded" and
# no failing input when the time is up while a worker is busy
# (golang/go#75804, fixed in Go 1.27): a count has no deadline to race.
# Minimising a new input is capped at 5 s so that a count cannot stall on it.
fuzz() {
	local target pkg name budget
	for target in ./pkg/httpapi:FuzzCommandBody:100000x ./pkg/httpapi:FuzzTransferBody:50000x ./pkg/httpapi:FuzzOrderBody:50000x ./pkg/wallet:FuzzDecodeEvent:500000x ./pkg/wallet:FuzzViewDecode:100000x; do
		IFS=: read -r pkg name budget <<<"$target"
		[ "$1" = short ] || budget=$1
		log "fuzz $name for $budget"
		go test -run '^$' -fuzz "^$name\$" -fuzztime "$budget" -fuzzminimizetime 5s -timeout 30m "$pkg"
	done
}

case "${1:-build}" in
build)
	deps
	check
	build
	;;
bin)
	build
	;;
deps)
	deps
	;;
fuzz)
	fuzz "${2:-2m}"
	;;
bench)
	# Measure on this machine and rewrite the bench block of BENCHMARKS.md.
	deps
	command -v wrk >/dev/null || apt_install wrk
	command -v redis-benchmark >/dev/null || apt_install redis-tools
	build
	shift
	go run ./utils/bench "$@"
	;;
faults)
	# The long fault suite: hundreds of kill -9 cycles of the writer under
	# load, and every other fault, with the counts and recovery times printed.
	deps test
	go test -v -count=1 -timeout 90m ./services/faults -args -cycles="${2:-300}"
	;;
test)
	deps test
	check
	build
	log "python3 -m unittest (utils/)"
	PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s utils -t . -p 'test_*.py'
	log "go test -race ./..."
	go test -race -count=1 -timeout 15m ./...
	fuzz short
	;;
*)
	echo "usage: $0 [build|test|deps|fuzz [time]|faults [cycles]|bench [-d duration]]" >&2
	exit 2
	;;
esac
