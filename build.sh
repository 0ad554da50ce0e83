#!/usr/bin/env bash
# build.sh — build and check Coffer.
#
#   ./build.sh          install missing prerequisites, check formatting, vet, build bin/
#   ./build.sh test     the same, then every test: utils/ unit tests, and go test -race ./...
#   ./build.sh deps     only install what running the suite needs (redis-server)
#   ./build.sh fuzz [T] run each fuzz target for T (default 2m; the test run does 10s each)
#   ./build.sh faults [N]  the long fault suite: N kill -9 cycles of the writer (default 300)
#   ./build.sh bench [-d 10s]  measure this machine (installs wrk) and rewrite BENCHMARKS.md
#
# A fresh machine needs only Go and Debian's package tools: this script
# installs the rest (redis-server; for the tests also python3, docker-compose, sqlite3).
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
# file, sqlite3 for the fault suite's lock holders).
deps() {
	command -v go >/dev/null || { echo "Go is required: https://go.dev/dl/" >&2; exit 1; }
	local missing=()
	command -v redis-server >/dev/null || missing+=(redis-server)
	if [ "${1:-}" = test ]; then
		command -v python3 >/dev/null || missing+=(python3)
		command -v docker-compose >/dev/null || missing+=(docker-compose)
		command -v sqlite3 >/dev/null || missing+=(sqlite3)
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

# fuzz TIME: each fuzz target for TIME, from the committed seed corpus
# (pkg/*/testdata/fuzz) plus what the fuzzer finds.
fuzz() {
	local target
	for target in ./pkg/httpapi:FuzzCommandBody ./pkg/wallet:FuzzDecodeEvent; do
		log "fuzz ${target#*:} for $1"
		go test -run '^$' -fuzz "^${target#*:}\$" -fuzztime "$1" "${target%%:*}"
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
	fuzz 10s
	;;
*)
	echo "usage: $0 [build|test|deps|fuzz [time]|faults [cycles]|bench [-d duration]]" >&2
	exit 2
	;;
esac
