# pingap-go. `make run` starts the proxy on the example config with its demo
# backends; `make test` installs what the tests need and runs them all.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 5s

.PHONY: build run test test-deps unit fuzz bench loadtest tlsbench vet clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o pingap ./cmd/pingap

run: build
	./pingap -config configs/example.toml -demo

test-deps:
	bash scripts/install-test-deps.sh

unit:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

# Short fuzzing runs of every fuzz target (the seed corpora also run as part
# of `unit`).
fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

test: test-deps unit fuzz

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./...

loadtest: build
	bash scripts/loadtest.sh

tlsbench:
	bash scripts/tlsbench.sh

vet:
	$(GO) vet ./...

clean:
	rm -f pingap
