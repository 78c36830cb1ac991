# seqwall: make demo (see it work), make test (what CI runs), make install (run it for real).

PREFIX      ?= /usr/local
DESTDIR     ?=
SWIFT       ?= swift
PYTHON      ?= /usr/bin/python3
DEBIAN_PACKAGES = pkg-config libnetfilter-queue-dev libmnl-dev iptables nftables iproute2 \
                  netcat-openbsd python3-scapy tcpdump procps libpcap-dev libsodium-dev hping3 iperf3 \
                  conntrack iputils-ping ipset keepalived nmap \
                  wireshark-common

.PHONY: all deps build release test unit-test integration-test demo install uninstall install-generated clean \
        fuzz fuzz-build fuzz-replay bench bench-e2e deb package-test

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

# The release binary stands on its own: the Swift runtime and Foundation are linked in
# (--static-swift-stdlib), so it needs only Debian's libraries, found the usual way (no
# $ORIGIN run path), and it is stripped (-s) and hardened like a Debian build (full RELRO).
# The check refuses a binary that would still look for the toolchain.
RELEASE_FLAGS = -c release --static-swift-stdlib --disable-local-rpath \
                -Xlinker -s -Xlinker -z -Xlinker relro -Xlinker -z -Xlinker now
release: deps
	$(SWIFT) build $(RELEASE_FLAGS)
	@if readelf -d .build/release/seqwall | grep -Eq 'RPATH|RUNPATH|libswift|libFoundation|libdispatch'; then \
	  echo "make release: .build/release/seqwall still depends on the Swift toolchain:" >&2; \
	  readelf -d .build/release/seqwall | grep -E 'NEEDED|RPATH|RUNPATH' >&2; exit 1; \
	fi

unit-test: build
	$(SWIFT) test

integration-test: build
	SEQWALL_BIN=$(CURDIR)/.build/debug/seqwall bash Tests/Integration/run.sh

# Unit tests, then real packets through a real NFQUEUE in network namespaces (needs root).
test: unit-test integration-test

# Fuzzing (docs/development.md, Fuzzing). FuzzTargets/ is a package of its own: its
# executables have no main and link only with -sanitize=fuzzer. Each target runs FUZZ_SECONDS,
# one after the other; new inputs go to FuzzTargets/.build/corpus/TARGET, crashes to
# FuzzTargets/Corpus/TARGET/crash-* (commit them with the fix: `make test` replays that
# directory).
FUZZ_SECONDS ?= 300
FUZZ_TARGETS  = packet-tracking:FuzzPacketTracking rule-file:FuzzRuleFile control-request:FuzzControlRequest sync-message:FuzzSyncMessage
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

# Benchmarks (not part of `make test`; see BENCHMARKS.md).
# The core benchmark: the tracker alone on one core, through ordo-one/benchmark (its own
# package in Benchmarks/, so the main package never depends on it). The plugin builds it in
# release mode.
bench: deps
	cd Benchmarks && $(SWIFT) package --disable-sandbox benchmark --scale --no-progress

# The end-to-end benchmark in a lab of namespaces (needs root): no queue, the kernel's
# conntrack, a C accept-all NFQUEUE consumer and seqwall (release build), side by side.
BENCH_E2E_PACKAGES = sockperf ethtool
bench-e2e: release
	@$(MAKE) --no-print-directory deps DEBIAN_PACKAGES="$(DEBIAN_PACKAGES) $(BENCH_E2E_PACKAGES)"
	SEQWALL_BIN=$(CURDIR)/.build/release/seqwall $(PYTHON) Benchmarks/e2e/bench_e2e.py $(BENCH_E2E_ARGS)

# --- make install / make uninstall (docs/operations.md, Install) -------------------------
# make install [PREFIX=/usr/local] [DESTDIR=] [SEQWALL_BINARY=path]: builds release (unless
# SEQWALL_BINARY names a binary to install instead), generates the systemd unit, the diversion
# helper, the shell completions and the man page (the last two from the binary's own argument
# parser) into .build/dist, and installs them. /etc/seqwall/seqwall.rules is never overwritten.
SEQWALL_BINARY ?=
INSTALL_BINARY  = $(or $(SEQWALL_BINARY),.build/release/seqwall)
BINDIR         ?= $(PREFIX)/bin
LIBEXECDIR     ?= $(PREFIX)/libexec/seqwall
DATADIR        ?= $(PREFIX)/share/seqwall
SYSCONFDIR     ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
MANDIR         ?= $(PREFIX)/share/man
BASHCOMPDIR    ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR     ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR    ?= $(PREFIX)/share/fish/vendor_completions.d
DIST_BUILD      = .build/dist
# The diversions seqwall-divert loads: nftables and iptables files, side by side.
DIVERSION_FILES = $(notdir $(wildcard rules/*.nft rules/*.iptables rules/*.ip6tables))
# The hand-written man pages of section 5 (the rule language), installed as they are.
MAN5_PAGES      = $(notdir $(wildcard docs/*.5))
# The man page's date: the last commit's, so the page does not change from one build to the next.
MAN_DATE       ?= $(shell git log -1 --format=%cs 2>/dev/null || date -u +%F)
SUBSTITUTE      = sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' \
                      -e 's|@IPTABLESDIR@|$(DATADIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g'

# The generate-manual tool of swift-argument-parser (the engine of its generate-manual plugin),
# built once, in debug: it only formats what `seqwall --experimental-dump-help` prints.
GENERATE_MANUAL = .build/debug/generate-manual

$(GENERATE_MANUAL):
	$(SWIFT) build --product generate-manual

# Everything install copies that is generated: from the binary being installed, and with this
# PREFIX's paths substituted, so it is made again on every install.
install-generated: $(if $(SEQWALL_BINARY),,release) $(GENERATE_MANUAL)
	@test -x $(INSTALL_BINARY) || { echo "make: $(INSTALL_BINARY) is not an executable" >&2; exit 1; }
	rm -rf $(DIST_BUILD) && mkdir -p $(DIST_BUILD)/man
	$(SUBSTITUTE) dist/seqwall.service.in > $(DIST_BUILD)/seqwall.service
	$(SUBSTITUTE) dist/seqwall-divert.in > $(DIST_BUILD)/seqwall-divert
	@# A completion file is sourced by the shell, never run: the parser's "#!" line goes.
	for shell in bash zsh fish; do \
	  $(INSTALL_BINARY) --generate-completion-script $$shell > $(DIST_BUILD)/completion.$$shell || exit 1; \
	  sed -i '1{/^#!/d}' $(DIST_BUILD)/completion.$$shell; \
	  test -s $(DIST_BUILD)/completion.$$shell || { echo "make: empty $$shell completion" >&2; exit 1; }; \
	done
	$(GENERATE_MANUAL) $(INSTALL_BINARY) --section 8 --date $(MAN_DATE) --output-directory $(DIST_BUILD)/man
	@# generate-manual copies a help text's blank lines (paragraph breaks) as they are, which
	@# mdoc warns about; .Pp is mdoc's paragraph break.
	sed -i 's/^$$/.Pp/' $(DIST_BUILD)/man/seqwall.8
	@# The parser knows no FILES, EXAMPLES or SEE ALSO, and its EXIT STATUS is only .Ex -std:
	@# docs/seqwall.8.in-sections has all four, written by hand. The generated EXIT STATUS
	@# goes, and the four go in before AUTHORS, or at the end when there is none.
	awk -v extra=docs/seqwall.8.in-sections \
	  'function add() { while ((getline line < extra) > 0) print line; added = 1 } \
	   /^\.Sh/ { skip = /^\.Sh "?EXIT STATUS"?$$/ } \
	   /^\.Sh AUTHORS/ && !added { add() } !skip { print } END { if (!added) add() }' \
	  $(DIST_BUILD)/man/seqwall.8 > $(DIST_BUILD)/man/seqwall.8.full
	mv $(DIST_BUILD)/man/seqwall.8.full $(DIST_BUILD)/man/seqwall.8
	test -s $(DIST_BUILD)/man/seqwall.8

install: install-generated
	install -D -m 0755 $(INSTALL_BINARY) $(DESTDIR)$(BINDIR)/seqwall
	install -D -m 0755 $(DIST_BUILD)/seqwall-divert $(DESTDIR)$(LIBEXECDIR)/seqwall-divert
	for f in $(DIVERSION_FILES); do install -D -m 0644 rules/$$f $(DESTDIR)$(DATADIR)/$$f || exit 1; done
	install -D -m 0644 rules/default.rules $(DESTDIR)$(DATADIR)/default.rules
	install -D -m 0644 dist/keepalived/keepalived.conf.example $(DESTDIR)$(DATADIR)/keepalived.conf.example
	install -D -m 0755 dist/keepalived/keepalived-notify $(DESTDIR)$(LIBEXECDIR)/keepalived-notify
	install -D -m 0644 $(DIST_BUILD)/seqwall.service $(DESTDIR)$(SYSTEMDUNITDIR)/seqwall.service
	install -D -m 0644 $(DIST_BUILD)/completion.bash $(DESTDIR)$(BASHCOMPDIR)/seqwall
	install -D -m 0644 $(DIST_BUILD)/completion.zsh $(DESTDIR)$(ZSHCOMPDIR)/_seqwall
	install -D -m 0644 $(DIST_BUILD)/completion.fish $(DESTDIR)$(FISHCOMPDIR)/seqwall.fish
	install -D -m 0644 $(DIST_BUILD)/man/seqwall.8 $(DESTDIR)$(MANDIR)/man8/seqwall.8
	for f in $(MAN5_PAGES); do install -D -m 0644 docs/$$f $(DESTDIR)$(MANDIR)/man5/$$f || exit 1; done
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/seqwall
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/seqwall/seqwall.rules ]; then \
	  echo "kept $(DESTDIR)$(SYSCONFDIR)/seqwall/seqwall.rules (yours); the shipped policy is $(DESTDIR)$(DATADIR)/default.rules"; \
	else \
	  install -m 0644 rules/default.rules $(DESTDIR)$(SYSCONFDIR)/seqwall/seqwall.rules; \
	fi

# Removes what install put there. /etc/seqwall/seqwall.rules goes only while it is still the
# shipped policy (the copy in DATADIR); a policy you changed stays, and so does its directory.
uninstall:
	@rules=$(DESTDIR)$(SYSCONFDIR)/seqwall/seqwall.rules; \
	if [ -e $$rules ]; then \
	  if cmp -s $$rules $(DESTDIR)$(DATADIR)/default.rules; then \
	    rm -f $$rules && rmdir $(DESTDIR)$(SYSCONFDIR)/seqwall 2>/dev/null || true; \
	  else \
	    echo "kept $$rules: it differs from the shipped policy (remove it by hand if you want)"; \
	  fi; \
	fi
	rm -f $(DESTDIR)$(BINDIR)/seqwall
	rm -f $(DESTDIR)$(LIBEXECDIR)/seqwall-divert $(DESTDIR)$(LIBEXECDIR)/keepalived-notify
	rmdir $(DESTDIR)$(LIBEXECDIR) 2>/dev/null || true
	rm -f $(addprefix $(DESTDIR)$(DATADIR)/,$(DIVERSION_FILES) default.rules keepalived.conf.example)
	rmdir $(DESTDIR)$(DATADIR) 2>/dev/null || true
	rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/seqwall.service
	rm -f $(DESTDIR)$(BASHCOMPDIR)/seqwall $(DESTDIR)$(ZSHCOMPDIR)/_seqwall $(DESTDIR)$(FISHCOMPDIR)/seqwall.fish
	rm -f $(DESTDIR)$(MANDIR)/man8/seqwall.8 $(addprefix $(DESTDIR)$(MANDIR)/man5/,$(MAN5_PAGES))

# --- make deb (docs/operations.md, Install) -----------------------------------------------------
# make deb: .build/deb/seqwall_VERSION_ARCH.deb, from the release binary and what make install
# stages into a root of its own (PREFIX=/usr, the unit in /lib/systemd/system as Debian 12
# wants it), plus dist/debian: the maintainer scripts (they never enable or start seqwall), the
# conffile list, the copyright. Depends come from the libraries the binary links
# (dpkg-shlibdeps) and a diversion backend the divert helper can drive: iptables first (it
# queues on every kernel, through nft_compat with iptables-nft), or nftables (whose `queue`
# needs a kernel with CONFIG_NFT_QUEUE; seqwall-divert falls back to iptables without it). Needs no root:
# dpkg-deb --root-owner-group gives root the files. lintian must find no error.
VERSION          := $(shell cat VERSION)
DEB_PACKAGES      = dpkg-dev lintian
DEB_ARCH          = $(shell dpkg --print-architecture)
DEB_DIR           = .build/deb
DEB_ROOT          = $(DEB_DIR)/debian/seqwall
DEB_FILE          = $(DEB_DIR)/seqwall_$(VERSION)_$(DEB_ARCH).deb
DEB_DIVERSION     = $(if $(wildcard rules/*.nft),iptables | nftables,iptables)
# The changelog's signature: the last commit's author and date, so the package does not change
# from one build of a commit to the next.
DEB_MAINTAINER   ?= $(shell git log -1 --format='%an <%ae>' 2>/dev/null)
DEB_DATE         ?= $(shell git log -1 --format=%cD 2>/dev/null || date -R)
# dpkg-deb clamps the files' times to it.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
DEB_DOC          = $(DEB_ROOT)/usr/share/doc/seqwall

deb: release $(GENERATE_MANUAL)
	@$(MAKE) --no-print-directory deps DEBIAN_PACKAGES="$(DEBIAN_PACKAGES) $(DEB_PACKAGES)"
	@test -n "$(DEB_MAINTAINER)" || { echo "make deb: set DEB_MAINTAINER='Name <address>' (no git history to take it from)" >&2; exit 1; }
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_ROOT)/DEBIAN $(DEB_DOC)
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(DEB_ROOT) PREFIX=/usr SEQWALL_BINARY=.build/release/seqwall \
	  SYSTEMDUNITDIR=/lib/systemd/system ZSHCOMPDIR=/usr/share/zsh/vendor-completions
	gzip -9n $(DEB_ROOT)/usr/share/man/man*/*
	install -m 0644 dist/debian/copyright $(DEB_DOC)/copyright
	printf 'seqwall (%s) unstable; urgency=medium\n\n  * Version %s.\n\n -- %s  %s\n' \
	  '$(VERSION)' '$(VERSION)' '$(DEB_MAINTAINER)' '$(DEB_DATE)' | gzip -9n > $(DEB_DOC)/changelog.gz
	chmod 0644 $(DEB_DOC)/changelog.gz
	install -m 0644 dist/debian/conffiles $(DEB_ROOT)/DEBIAN/conffiles
	install -m 0755 dist/debian/postinst dist/debian/prerm dist/debian/postrm $(DEB_ROOT)/DEBIAN/
	@# dpkg-shlibdeps reads the package's name from a debian/control beside the staged root.
	printf 'Source: seqwall\n\nPackage: seqwall\nArchitecture: any\n' > $(DEB_DIR)/debian/control
	cd $(DEB_DIR) && dpkg-shlibdeps -O debian/seqwall/usr/bin/seqwall | sed -n 's/^shlibs:Depends=//p' > shlibs
	@test -s $(DEB_DIR)/shlibs || { echo "make deb: dpkg-shlibdeps found no dependency" >&2; exit 1; }
	sed -e 's|@VERSION@|$(VERSION)|' -e 's|@ARCH@|$(DEB_ARCH)|' -e 's|@MAINTAINER@|$(DEB_MAINTAINER)|' \
	    -e "s/@INSTALLED_SIZE@/$$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1)/" \
	    -e "s/@DEPENDS@/$$(cat $(DEB_DIR)/shlibs), $(DEB_DIVERSION)/" \
	    dist/debian/control.in > $(DEB_ROOT)/DEBIAN/control
	cd $(DEB_ROOT) && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
	  | xargs -0 md5sum > DEBIAN/md5sums
	chmod 0644 $(DEB_ROOT)/DEBIAN/md5sums $(DEB_ROOT)/DEBIAN/control
	find $(DEB_ROOT) -type d -exec chmod 0755 {} +
	$(if $(SOURCE_DATE_EPOCH),SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH)) dpkg-deb --root-owner-group -Zxz --build $(DEB_ROOT) $(DEB_FILE)
	lintian --fail-on error $(DEB_FILE)
	@echo "make deb: $(DEB_FILE)"

# make package-test: the .deb alone suffices (Tests/Package/test_package.py; needs root and
# the package mirror): a minimal Debian root made with debootstrap from the host's mirror, the
# package installed there with apt, seqwall run from inside it on a queue in a namespace. It
# builds the root under .build/package-test and removes it; nothing is kept between runs.
PACKAGE_TEST_PACKAGES = debootstrap
package-test: deb
	@$(MAKE) --no-print-directory deps DEBIAN_PACKAGES="$(DEBIAN_PACKAGES) $(PACKAGE_TEST_PACKAGES)"
	SEQWALL_DEB=$(CURDIR)/$(DEB_FILE) $(PYTHON) -m unittest -v Tests/Package/test_package.py

clean:
	rm -rf .build
