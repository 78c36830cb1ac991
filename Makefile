# seqwall: make demo (see it work), make test (what CI runs), make install (run it for real).

PREFIX      ?= /usr/local
DESTDIR     ?=
SWIFT       ?= swift
PYTHON      ?= /usr/bin/python3
DEBIAN_PACKAGES = pkg-config libnetfilter-queue-dev libmnl-dev iptables iproute2 \
                  netcat-openbsd python3-scapy tcpdump procps libpcap-dev hping3 iperf3

.PHONY: all deps build release test unit-test integration-test demo install uninstall clean \
        fuzz fuzz-build fuzz-replay

all: build

# Installs the Debian packages the project needs, only when one is missing (idempotent).
deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

unit-test: build
	$(SWIFT) test

integration-test: build
	SEQWALL_BIN=$(CURDIR)/.build/debug/seqwall bash Tests/Integration/run.sh

# Unit tests, then real packets through a real NFQUEUE in network namespaces (needs root).
test: unit-test integration-test

# Fuzzing (README: Fuzzing). FuzzTargets/ is a package of its own: its executables have no main
# and link only with -sanitize=fuzzer. Each target runs FUZZ_SECONDS, one after the other; new
# inputs go to FuzzTargets/.build/corpus/TARGET, crashes to FuzzTargets/Corpus/TARGET/crash-*
# (commit them with the fix: `make test` replays that directory).
FUZZ_SECONDS ?= 300
FUZZ_TARGETS  = packet-tracking:FuzzPacketTracking rule-file:FuzzRuleFile control-request:FuzzControlRequest
FUZZ_FLAGS   ?= -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1

# swiftc keeps only the last -sanitize= it is given, and SwiftPM passes `--sanitize=fuzzer
# --sanitize=address` as two flags in no fixed order (Swift 6.3.1): a build may come out with
# ASan but without the coverage instrumentation libFuzzer needs, and fuzz blind. The combined
# flag last on the command line settles it; the check below refuses a blind build.
fuzz-build: deps
	$(SWIFT) build --package-path FuzzTargets --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address
	@for entry in $(FUZZ_TARGETS); do executable=$${entry##*:}; \
	  readelf -S FuzzTargets/.build/debug/$$executable | grep -q __sancov_cntrs \
	    || { echo "make fuzz-build: $$executable has no coverage instrumentation" >&2; exit 1; }; \
	done

fuzz: fuzz-build
	@status=0; for entry in $(FUZZ_TARGETS); do \
	  name=$${entry%%:*}; executable=$${entry##*:}; dict=""; \
	  [ -f FuzzTargets/Dictionaries/$$name.dict ] && dict="-dict=FuzzTargets/Dictionaries/$$name.dict"; \
	  mkdir -p FuzzTargets/.build/corpus/$$name; \
	  echo "make fuzz: $$name for $(FUZZ_SECONDS) s"; \
	  FuzzTargets/.build/debug/$$executable FuzzTargets/.build/corpus/$$name FuzzTargets/Corpus/$$name \
	    -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=FuzzTargets/Corpus/$$name/crash- $$dict $(FUZZ_FLAGS) \
	    </dev/null || status=1; \
	done; exit $$status

# The committed corpus and crash reproducers through the same entry points, uninstrumented
# (part of `swift test`, so of `make test`).
fuzz-replay:
	$(SWIFT) test --filter CorpusReplayTests

demo: build
	SEQWALL_BIN=$(CURDIR)/.build/debug/seqwall $(PYTHON) scripts/demo.py

install: release
	install -D -m 0755 .build/release/seqwall $(DESTDIR)$(PREFIX)/bin/seqwall
	install -d -m 0755 $(DESTDIR)/etc/seqwall
	[ -e $(DESTDIR)/etc/seqwall/seqwall.rules ] || install -m 0644 rules/default.rules $(DESTDIR)/etc/seqwall/seqwall.rules
	install -D -m 0644 rules/host.iptables $(DESTDIR)$(PREFIX)/share/seqwall/host.iptables
	install -D -m 0644 rules/gateway.iptables $(DESTDIR)$(PREFIX)/share/seqwall/gateway.iptables

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/seqwall
	rm -rf $(DESTDIR)$(PREFIX)/share/seqwall
	@echo "left /etc/seqwall/seqwall.rules in place (your policy); remove it by hand if you want"

clean:
	rm -rf .build
