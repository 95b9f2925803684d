# pingap-go. `make run` starts the proxy on the example config with its demo
# backends; `make test` installs what the tests need and runs them all.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 5s

.PHONY: build run test test-deps unit fuzz bench profile loadtest tlsbench vet clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o pingap ./cmd/pingap

run: build
	./pingap -config configs/example.toml -demo

test-deps:
	bash scripts/install-test-deps.sh

unit:
	$(GO) vet ./...
	# The other systems the code claims to build on (build only).
	GOOS=windows $(GO) build ./...
	GOOS=darwin $(GO) build ./...
	$(GO) test -race -count=1 -timeout 15m ./...
	# Allocation guards (not meaningful under -race, where sync.Pool drops
	# items; those tests skip their counts there): every test named *Alloc*.
	$(GO) test -count=1 -run 'Alloc' ./internal/...

# Short fuzzing runs of every fuzz target (the seed corpora also run as part
# of `unit`).
fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

test: test-deps unit fuzz

# Go benchmarks, benchstat-friendly: `make bench BENCHCOUNT=6 > new.txt`,
# then `benchstat old.txt new.txt`. BENCH selects benchmarks, PKGS packages.
BENCH      ?= .
BENCHCOUNT ?= 1
PKGS       ?= ./...
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count $(BENCHCOUNT) $(PKGS)

# CPU, allocation, block and mutex profiles of the binary under wrk load
# (scripts/profile.sh; needs wrk and nginx: bash ../shared/bench/setup.sh).
profile:
	bash scripts/profile.sh

# The shared side-by-side harness (nginx, HAProxy, Caddy, pingap-go) with a
# fresh binary; LOADTEST_ARGS go to run.sh, e.g. LOADTEST_ARGS=--quick or
# LOADTEST_ARGS='--h2 --candidate-h2'.
loadtest:
	bash scripts/loadtest.sh $(LOADTEST_ARGS)

# TLS side by side with nginx: full handshakes, HTTP/1.1 and h2 over TLS
# (scripts/tlsbench.sh, docs/tls-performance.md).
tlsbench:
	bash scripts/tlsbench.sh $(TLSBENCH_ARGS)

vet:
	$(GO) vet ./...

clean:
	rm -f pingap
