# Dogwood — `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/dogwood
# Build info (`dogwood version`): a tag v1.2.3 gives 1.2.3; untagged trees say the release
# they are heading for (mesh/release) with -dev.
# The date is the commit's, so rebuilding one commit gives the same binary.
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
VERSION ?= $(or $(patsubst v%,%,$(shell git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null)),$(shell sed -n 's/^const Version = "\(.*\)"/\1/p' mesh/release/release.go)-dev)
DATE    ?= $(shell TZ=UTC git log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
# urfave/cli's man-page and markdown generators (and the markdown parser they
# link, whose package init every CLI call paid for) are not used. The tag agent
# builds dogwood-agent: the same command with the agent's side linked in (see
# cmd/dogwood/delegate.go); make test and lint use it so every file is checked.
TAGS  := urfave_cli_no_docs
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
PKGS  := wireguard-tools wireguard-go iproute2 nftables dnsutils curl iperf3 dnsperf knot procps busybox-static iputils-ping bc prometheus debootstrap zsh fish podman runc
# Commands that show whether each package above is installed (same order).
CMDS  := wg wireguard-go ip nft dig curl iperf3 dnsperf knotd pkill busybox ping bc promtool debootstrap zsh fish podman runc

.PHONY: upgrade-test chaos dist lint help build deps test test-unit test-netns bench bench-cni fuzz demo demo-down clean

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: ## build bin/dogwood, the agent's side bin/dogwood-agent it runs, and the CNI plugin bin/dogwood-cni
	$(GO) build -trimpath -tags $(TAGS) -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/dogwood
	$(GO) build -trimpath -tags $(TAGS),agent -ldflags "$(LDFLAGS)" -o $(dir $(BIN))dogwood-agent ./cmd/dogwood
	$(GO) build -trimpath -o bin/dogwood-cni ./cmd/dogwood-cni

deps: ## install the system tools tests and demo use (apt-get, only what is missing)
	@missing=""; pkgs=($(PKGS)); cmds=($(CMDS)); \
	for i in "$${!cmds[@]}"; do command -v "$${cmds[$$i]}" >/dev/null 2>&1 || missing="$$missing $${pkgs[$$i]}"; done; \
	if command -v busybox >/dev/null && ldd "$$(command -v busybox)" >/dev/null 2>&1; then missing="$$missing busybox-static"; fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing:$$missing (run as root or install them)"; exit 1; fi; \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

dist: ## release archives, .deb packages and SHA256SUMS in dist/ for this machine's architecture (ALL=1: amd64 and arm64)
	rm -rf dist && VERSION=$(VERSION) COMMIT=$(COMMIT) DATE=$(DATE) $(if $(ALL),ARCHS="amd64 arm64") bash cmd/dogwood/packaging/dist.sh

lint: ## hygiene gates: go.mod/go.sum tidy, staticcheck, govulncheck (skipped when offline)
	$(GO) mod tidy -diff
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags agent ./cmd/dogwood
	bash testdata/ci/govulncheck.sh

test: deps build lint ## run every test (network-namespace tests need root; they skip otherwise)
	$(GO) vet ./...
	$(GO) vet -tags agent ./cmd/dogwood
	$(GO) test -tags agent -count=1 -timeout 15m ./...
	@echo "short fuzz runs (make fuzz runs them longer); counted, not timed: a time limit"
	@echo "that expires while the fuzzer handles a new input is reported as a failure"
	$(GO) test -run '^$$' -fuzz '^FuzzHandler$$' -fuzztime 100000x ./dns/server
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 200000x ./dns/qname
	$(GO) test -run '^$$' -fuzz '^FuzzNormalizeDNSRecord$$' -fuzztime 100000x ./mesh/catalog
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRecord$$' -fuzztime 100000x ./mesh/catalog
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 100000x ./peers/config
	$(GO) test -run '^$$' -fuzz '^FuzzGossipReceive$$' -fuzztime 20000x ./mesh/gossip

test-unit: ## tests that need no root and no tools
	$(GO) test -tags agent -count=1 -short ./...

bench: deps build ## benchmarks: propagation, memory, idle gossip, DNS vs Knot, WireGuard reconcile, health checks, DNS filtering, iperf3, peer create
	set -o pipefail; DOGWOOD_BENCH=1 $(GO) test -count=1 -run 'Bench' -v -timeout 45m ./mesh/meshbench/ | grep -E '^(BENCH|--- |ok|FAIL)'
	set -o pipefail; DOGWOOD_BENCH=1 $(GO) test -count=1 -run 'BenchSim' -v -timeout 60m ./mesh/gossip/sim/ | grep -E '^(BENCH|--- |ok|FAIL)'
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 20x ./peers/wgsync ./peers/device
	$(GO) test -count=1 -run '^$$' -bench 'BenchmarkChecks' -benchtime 20x ./mesh/health
	$(GO) test -count=3 -run '^$$' -bench 'BenchmarkAnswerFilteringPaired' -benchtime 100x ./dns/resolve
	@echo "DNS answers from wire format: allocations per query must be 0 (counted, not timed)"
	$(GO) test -count=1 -run '^$$' -bench 'BenchmarkAnswer|BenchmarkServeRecords' -benchmem -benchtime 20000x ./dns/server
	bash dns/bench/run.sh
	bash dns/bench/records.sh
	bash testdata/bench/iperf.sh
	bash testdata/bench/peer_create.sh
	set -o pipefail; DOGWOOD_BENCH=1 $(GO) test -tags agent -count=1 -run 'TestAsymmetricLinkNamedCreates' -v ./cmd/dogwood/e2e/chaos/ | grep -E '^(BENCH|--- |ok|FAIL)'

upgrade-test: deps build ## rolling upgrades from v0.2.0 (5 hosts, 20 s apart, workload, downgrade) and v0.1.0; make test runs them 4 s apart
	DOGWOOD_UPGRADE_SPACING=$${DOGWOOD_UPGRADE_SPACING:-20s} DOGWOOD_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -v -timeout 20m -run '^TestUpgrade' ./cmd/dogwood/e2e/netns/
	$(GO) test -count=1 -v -run 'Golden|Newer' ./mesh/store/

bench-cni: deps build ## containers through podman: ADD → resolvable and reachable from another host, p99 over 50 (CNI_BENCH_N=), and 100 containers in a row
	DOGWOOD_BENCH=1 DOGWOOD_CNI_CONTAINERS=$${DOGWOOD_CNI_CONTAINERS:-100} $(GO) test -count=1 -v -timeout 20m -run '^TestCNI(Podman|Bench)$$' ./cmd/dogwood/e2e/netns/ | grep -E '^(BENCH|    cni|--- |ok|FAIL)|CNI:'

chaos: deps build ## fault-injection suite: 5 hosts, 20 seeded nemesis rounds (CHAOS_SEED=, CHAOS_ROUNDS=); make test runs 3
	CHAOS_ROUNDS=$${CHAOS_ROUNDS:-20} DOGWOOD_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -v -timeout 30m -run '^TestChaos$$' ./cmd/dogwood/e2e/chaos/

fuzz: ## run the fuzzers for a while (FUZZTIME=60s)
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $${FUZZTIME:-60s} ./dns/qname
	$(GO) test -run '^$$' -fuzz '^FuzzNormalizeDNSRecord$$' -fuzztime $${FUZZTIME:-60s} ./mesh/catalog
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRecord$$' -fuzztime $${FUZZTIME:-60s} ./mesh/catalog
	$(GO) test -run '^$$' -fuzz '^FuzzHandler$$' -fuzztime $${FUZZTIME:-60s} ./dns/server
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $${FUZZTIME:-60s} ./peers/config
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $${FUZZTIME:-60s} ./mesh/sixpn
	$(GO) test -run '^$$' -fuzz '^FuzzReceive$$' -fuzztime $${FUZZTIME:-60s} ./mesh/gossip
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $${FUZZTIME:-60s} ./mesh/invite
	$(GO) test -run '^$$' -fuzz '^FuzzGossipReceive$$' -fuzztime $${FUZZTIME:-60s} ./mesh/gossip

demo: deps build ## run three hosts, two orgs and a developer tunnel in network namespaces
	bash testdata/demo/demo.sh

demo-down: ## remove anything a demo left behind
	bash testdata/demo/demo.sh down

clean: ## remove build output
	rm -rf bin
