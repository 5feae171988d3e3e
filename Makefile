# SPDX-License-Identifier: GPL-2.0
#
# rslab: out-of-tree Rust-for-Linux slab allocator modules.
#
#   make            build the modules against $(KDIR): rslab.ko and kmalloc_demo.ko
#   make test-modules  also rslab's test and bench flavours (rslab_kunit.ko,
#                   rslab_bench.ko), which the suite and make bench load
#   make modules_install  install the product modules into $(INSTALL_MOD_PATH)/lib/modules
#   make rust-analyzer    rust-project.json for an editor
#   make tools      build tools/rslabctl (cargo, on the host; the VM runs it from the tree)
#   make run        set up if needed, boot the VM, load the modules, show what they do
#   make check      every test: host checks, then the suite inside the VM, on
#                   the default kernel and on the debug (sanitizer) kernel
#   make bench      rslab against SLUB, kmalloc and the kernel mempool, in the
#                   VM (icount and plain TCG): a table, CSV, JSON and a plot
#   make bench-gate the regression gate (part of make check): rslab's rows
#                   within 2% of scripts/bench-gate.csv, in instructions
#   make bench-gate-update  rewrite that baseline after a deliberate change
#   make stress     60 s of rslabctl stress on every vCPU of the debug kernel
#   make fuzz       100000 seeded random ioctls on the debug kernel
#   make mutants    deliberate bugs, one at a time: the suite must catch each
#   make race       the multi-CPU scripts on the KCSAN (data race) kernel
#   make shell      an interactive shell in the VM, the modules' tree mounted
#   make clean      remove build outputs
#
# KDIR defaults to the kernel of flavour FLAVOUR (default or debug) that
# scripts/setup builds and caches (under $(RSLAB_CACHE)); those kernels are
# built with LLVM=$(RSLAB_LLVM), and modules must use the same toolchain as
# their kernel. The modules of each flavour go to build/$(FLAVOUR)/ (Kbuild's
# MO=), so both can be built at once. Pass KDIR=<build tree> (and LLVM=1 if it
# was built with LLVM) to build against another Rust-enabled tree.

RSLAB_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/rslab
-include $(RSLAB_CACHE)/env.mk

FLAVOUR ?= default
ifeq ($(origin KDIR),undefined)
KDIR := $(RSLAB_CACHE)/kernel-$(FLAVOUR)
LLVM ?= $(RSLAB_LLVM)
KMAKE_ENV := RUST_LIB_SRC=$(RUST_LIB_SRC) LIBCLANG_PATH=$(LIBCLANG_PATH) \
	PATH=$(if $(filter $(RSLAB_BINDIR),$(subst :, ,$(PATH))),$(PATH),$(RSLAB_BINDIR):$(PATH))
endif

MODDIR ?= $(CURDIR)/build/$(FLAVOUR)
KMAKE = $(KMAKE_ENV) $(MAKE) -C $(KDIR) M=$(CURDIR) MO=$(MODDIR) $(if $(LLVM),LLVM=$(LLVM))
VM_RUN := scripts/vm-run
SELFTESTS := tools/testing/selftests/rslab
CARGO ?= $(or $(wildcard $(RSLAB_BINDIR)/cargo),cargo)
RSLABCTL := tools/rslabctl
CARGO_FLAGS := --locked --manifest-path $(RSLABCTL)/Cargo.toml
RUST_SOURCES = $(shell git ls-files --cached --others --exclude-standard -- '*.rs' 2>/dev/null)

.PHONY: bench-gate bench-gate-update race mutants all modules test-modules modules_install rust-analyzer foreign-check tools tools-check plot-tool plot-check bench abi-check setup run check check-host check-vm lint selftests vm-check vm-checks vm-check-default stress fuzz fmt shell clean help

all: modules

# The oldest kernel whose Rust crate has every API rslab uses (the
# miscdevice, debugfs and pin-init ones of 7.x) and Kbuild's MO=.
MIN_KERNEL := 7.3
KDIR_VERSION = $(shell $(MAKE) -s -C $(KDIR) kernelversion 2>/dev/null)
define check_kdir
	@test -e $(KDIR)/Makefile || { echo "No kernel build tree at $(KDIR): run scripts/setup (or make run), or pass KDIR=" >&2; exit 1; }
	@v='$(KDIR_VERSION)'; test -n "$$v" && \
		test "$$(printf '%s\n%s\n' $(MIN_KERNEL) "$${v%%-*}" | sort -V | head -n1)" = $(MIN_KERNEL) || \
		{ echo "rslab needs Linux $(MIN_KERNEL) or later; $(KDIR) is '$$v'" >&2; exit 1; }
	@grep -qs '^CONFIG_RUST=y' $(KDIR)/.config || { echo "$(KDIR) is not built with CONFIG_RUST=y" >&2; exit 1; }
endef

# The product: rslab.ko and kmalloc_demo.ko, nothing for tests.
modules:
	$(check_kdir)
	$(KMAKE) modules

# The product and rslab's test and bench flavours (see rust/Kbuild).
test-modules:
	$(MAKE) modules RSLAB_TEST=y

modules_install:
	$(check_kdir)
	$(KMAKE) modules_install

# rust-project.json, at the top of the tree where editors look for it.
rust-analyzer:
	$(check_kdir)
	$(KMAKE) rust-analyzer
	cp $(MODDIR)/rust-project.json rust-project.json

# The kernel flavours to set up: make check needs both.
SETUP_FLAVOURS := default
check check-vm stress fuzz: SETUP_FLAVOURS := default debug
race: SETUP_FLAVOURS := race
setup:
	scripts/setup $(foreach f,$(SETUP_FLAVOURS),--flavour $(f))

run: setup
	$(MAKE) modules tools selftests
	$(VM_RUN) --flavour $(FLAVOUR) --timeout 300 -- scripts/demo

check: setup
	$(MAKE) fmt lint selftests tools tools-check plot-check abi-check foreign-check
	$(MAKE) FLAVOUR=debug test-modules
	$(MAKE) vm-checks

check-host: setup
	$(MAKE) fmt lint selftests tools tools-check plot-check abi-check foreign-check

check-vm: setup
	$(MAKE) test-modules selftests tools
	$(MAKE) FLAVOUR=debug test-modules
	$(MAKE) vm-checks

# rslabctl, built on the host with the crates in tools/Cargo.lock (one
# workspace: rslabctl, rslab-plot and rslab-uapi, the ABI crate; one
# target/ folder, tools/target).
tools:
	$(CARGO) build --release $(CARGO_FLAGS)

# The tool's own tests (argument parsing, table rendering, ABI layout),
# clippy with every warning an error, and rustfmt.
UAPI_FLAGS := --locked --manifest-path tools/rslab-uapi/Cargo.toml
tools-check:
	$(CARGO) test --release $(CARGO_FLAGS)
	$(CARGO) clippy --release --all-targets $(CARGO_FLAGS) -- -D warnings
	$(CARGO) clippy --release --all-targets $(UAPI_FLAGS) -- -D warnings
	$(CARGO) fmt --check --manifest-path $(RSLABCTL)/Cargo.toml
	$(CARGO) fmt --check --manifest-path tools/rslab-uapi/Cargo.toml

# tools/rslab-plot draws make bench's ratios; checked like rslabctl.
PLOT := tools/rslab-plot
PLOT_FLAGS := --locked --manifest-path $(PLOT)/Cargo.toml
plot-tool:
	$(CARGO) build --release $(PLOT_FLAGS)

plot-check:
	$(CARGO) test --release $(PLOT_FLAGS)
	$(CARGO) clippy --release --all-targets $(PLOT_FLAGS) -- -D warnings
	$(CARGO) fmt --check --manifest-path $(PLOT)/Cargo.toml

# Not part of make check (a smoke run of the same harness is: bench.sh,
# and the regression gate below).
bench: setup
	$(MAKE) test-modules plot-tool
	scripts/bench

# The regression gate (scripts/bench-gate): one short icount boot; each
# single-threaded rslab row's instructions per operation within 2% of
# scripts/bench-gate.csv. make bench-gate-update rewrites that baseline.
# It measures a plain build, the one users and make bench get, in its own
# folder: make lint's clippy-driver objects run some paths 1% longer.
GATE_MODDIR := $(CURDIR)/build/gate
bench-gate bench-gate-update:
	$(MAKE) test-modules MODDIR=$(GATE_MODDIR)
	RSLAB_MODDIR=$(GATE_MODDIR) scripts/bench-gate $(if $(filter bench-gate-update,$@),--update)

# The ABI as rust/device/uapi.rs has it (via rslab-uapi and rslabctl) and as a C compiler makes of
# include/uapi/rslab.h (via rslab_sys) must be the same.
abi-check: tools selftests
	@mkdir -p build
	tools/target/release/rslabctl abi > build/abi-rust.txt
	$(SELFTESTS)/rslab_sys abi > build/abi-c.txt
	diff -u build/abi-c.txt build/abi-rust.txt
	@echo "abi-check: rust/device/uapi.rs and include/uapi/rslab.h agree ($$(wc -l < build/abi-c.txt) items)"


# A from-scratch build with clippy on and every warning an error; clippy-driver
# also produces the objects that the VM loads. Warnings that no flag turns
# into errors (objtool's, modpost's) fail it too.
lint:
	$(MAKE) clean
	@mkdir -p build
	@$(MAKE) test-modules CLIPPY=1 KCFLAGS=-Werror KRUSTFLAGS=-Dwarnings > build/lint.log 2>&1; \
		rc=$$?; cat build/lint.log; test $$rc -eq 0 || exit $$rc; \
		if grep -n 'warning:' build/lint.log; then echo "lint: the build warned" >&2; exit 1; fi
	@if nm $(MODDIR)/rust/rslab.ko | grep -iE 'bench|kunit|provoke|sample'; then \
		echo "lint: rslab.ko carries test, bench or sample code (above)" >&2; exit 1; fi
	scripts/unsafe-count
	scripts/unsafe-count --check Documentation/rslab.rst

# The selftests, kselftest style: built and installed into $(KSFT_INSTALL)
# by the kernel's own lib.mk (from the kernel source, KSFT_DIR), with the
# kernel's run_kselftest.sh and runner beside them; the VM runs them from
# there (run_tests.sh). The C helpers are built on the host, like the
# modules.
KSFT_DIR ?= $(firstword $(wildcard $(KDIR)/source/tools/testing/selftests $(KDIR)/tools/testing/selftests))
KSFT_INSTALL := build/kselftest
KSFT_MAKE = $(MAKE) --no-print-directory -C $(SELFTESTS) KSFT_DIR=$(KSFT_DIR)
selftests:
	@test -n "$(KSFT_DIR)" || { echo "No kernel source at $(KDIR)/source: run scripts/setup, or pass KSFT_DIR=" >&2; exit 1; }
	$(KSFT_MAKE)
	rm -rf $(KSFT_INSTALL)
	$(KSFT_MAKE) install INSTALL_PATH=$(CURDIR)/$(KSFT_INSTALL)/rslab
	$(KSFT_MAKE) -s emit_tests COLLECTION=rslab > $(KSFT_INSTALL)/kselftest-list.txt
	cp $(KSFT_DIR)/run_kselftest.sh $(KSFT_INSTALL)/
	cp -r $(KSFT_DIR)/kselftest $(KSFT_INSTALL)/

# The kernel's KTAP parser judges a suite's output (VM_LOG): a document it
# cannot parse, or one whose tests failed, fails.
KUNIT_PY = $(KSFT_DIR)/../kunit/kunit.py
KTAP_CHECK = python3 $(KUNIT_PY) parse

# The whole suite on the FLAVOUR kernel; the sanitizers make the debug one
# several times slower under TCG.
# The seeds of the suite's random campaigns go into the VM when given: a
# failed run prints its seed, and make check RSLAB_FAULT_SEED=N replays it.
SEED_VARS := RSLAB_FAULT_SEED RSLAB_STRESS_SEED RSLAB_FUZZ_SEED
SEED_ENV = $(foreach v,$(SEED_VARS),$(if $($(v)),$(v)=$($(v))))
# (Three VMs at once on two cores each run at about half speed.)
VM_TIMEOUT := $(if $(filter debug,$(FLAVOUR)),1800,1200)
# The default kernel's VM has two NUMA nodes (a vCPU and 512 MiB each), so
# that the suite runs rslab's remote-node paths: refills from and frees to
# another node, node-directed allocations; the debug VMs have one.
VM_NUMA := $(if $(filter default,$(FLAVOUR)),2,1)
# VM_APPEND: more kernel parameters. make check boots the default kernel
# with init_on_alloc=1 and the second debug VM with init_on_free=1, so that
# KUnit checks rslab honours each (distributions turn them on).
VM_APPEND := $(if $(filter default,$(FLAVOUR)),init_on_alloc=1)
# SUITE: the scripts to run (default: all); VM_LOG: where vm-run keeps the
# output (default: build/vm-$(FLAVOUR).log, the console beside it);
# VM_ENV: VAR=VALUE settings for the suite.
VM_LOG_FILE = $(abspath $(or $(VM_LOG),build/vm-$(FLAVOUR).log))
vm-check:
	$(if $(filter default,$(FLAVOUR)),scripts/vm-run-selftest)
	$(VM_RUN) --flavour $(FLAVOUR) --log $(VM_LOG_FILE) --timeout $(VM_TIMEOUT) \
		--numa $(VM_NUMA) $(if $(VM_APPEND),--append "$(VM_APPEND)") --expect-verdict -- \
		env $(SEED_ENV) $(VM_ENV) $(SELFTESTS)/run_tests.sh $(SUITE)
	$(KTAP_CHECK) $(VM_LOG_FILE) > $(VM_LOG_FILE).parsed || { cat $(VM_LOG_FILE).parsed; exit 1; }
	@echo "vm-check: kunit.py parse accepts $(VM_LOG_FILE) ($$(grep -m1 'Testing complete' $(VM_LOG_FILE).parsed))"
	$(if $(TOTALS_KEY),@$(call check_totals,$(TOTALS_KEY)))

# make check's VMs, three at once: the default kernel's (the runner's own
# tests, then the whole suite) and the debug kernel's in two parts. The
# debug kernel runs the scripts whose kernel paths its sanitizers judge;
# DEBUG_SKIP's check formats and numbers (slabinfo lines, the kmalloc_demo
# interface, the bench table) whose code the debug set runs too, and took
# 5 of its 23 min. Each debug part ends with dmesg_clean.sh, which judges
# its own kernel's log. (make vm-check FLAVOUR=debug runs all in one VM.)
# (Read when a debug part starts: make selftests installs the list.)
ALL_SCRIPTS = $(shell sed -n 's/^rslab://p' $(KSFT_INSTALL)/kselftest-list.txt)
DEBUG_SKIP := kmalloc_demo.sh slabinfo.sh bench.sh
DEBUG_PART_1 := device.sh fault.sh
DEBUG_PART_2 = $(filter-out $(DEBUG_PART_1) $(DEBUG_SKIP) dmesg_clean.sh debug_tools.sh,$(ALL_SCRIPTS))
# After dmesg_clean.sh: debug_tools.sh's deliberate reports taint the kernel
# (and KASAN's turns lockdep off), so it runs last. KASAN reports once a
# boot, so each part spends its report on a different case.
DEBUG_LAST_1 := debug_tools.sh
DEBUG_LAST_2 := debug_tools.sh
DEBUG_ENV_2 := RSLAB_KASAN_CASE=use-after-free
VM_CHECKS := vm-check-default vm-check-debug-1 vm-check-debug-2 bench-gate
vm-checks:
	@echo "vm-checks: $(VM_CHECKS), three at once; each one's output comes when it ends (live: build/vm-*.log)"
	$(MAKE) -j3 -k --output-sync=target $(VM_CHECKS)

# check_totals PART: the verdict of VM_LOG_FILE counts as many test cases as
# $(SELFTESTS)/totals says PART has (make check's parts only: a SUITE of
# one's own choosing runs fewer).
define check_totals
want=$$(awk '$$1 == "$(1)" { print $$2 }' $(SELFTESTS)/totals); \
	got=$$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$$' $(VM_LOG_FILE) | tail -n 1 | awk '{ print $$1 + $$3 + $$5 }'); \
	[ -n "$$want" ] && [ "$$got" = "$$want" ] || \
	{ echo "vm-check: $(1) ran $$got test cases, $(SELFTESTS)/totals lists $$want" >&2; exit 1; }; \
	echo "vm-check: $(1) ran the $$want test cases $(SELFTESTS)/totals lists"
endef

vm-check-default:
	$(MAKE) TOTALS_KEY=default vm-check

DEBUG_APPEND_2 := init_on_free=1
vm-check-debug-%:
	$(MAKE) FLAVOUR=debug TOTALS_KEY=debug-$* VM_LOG=build/vm-debug-$*.log SUITE="$(DEBUG_PART_$*) dmesg_clean.sh $(DEBUG_LAST_$*)" \
		$(if $(DEBUG_APPEND_$*),VM_APPEND="$(DEBUG_APPEND_$*)") $(if $(DEBUG_ENV_$*),VM_ENV="$(DEBUG_ENV_$*)") vm-check

# The long runs, on the debug kernel, each followed by the kernel-log and
# kmemleak verdict. FUZZ_SEED picks the seed (default: a new one, printed
# first, so that a failure can be replayed with FUZZ_SEED=).
STRESS_SECONDS ?= 60
FUZZ_ITERATIONS ?= 100000
ifeq ($(origin FUZZ_SEED),undefined)
FUZZ_SEED := $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
endif
stress: setup
	$(MAKE) FLAVOUR=debug test-modules selftests tools
	$(VM_RUN) --flavour debug --timeout 1200 --expect-verdict -- \
		env RSLAB_STRESS_SECONDS=$(STRESS_SECONDS) $(SELFTESTS)/run_tests.sh stress.sh dmesg_clean.sh

fuzz: setup
	$(MAKE) FLAVOUR=debug test-modules selftests tools
	@echo "fuzz: seed $(FUZZ_SEED), $(FUZZ_ITERATIONS) calls (replay: make fuzz FUZZ_SEED=$(FUZZ_SEED))"
	$(VM_RUN) --flavour debug --timeout 1800 --expect-verdict -- \
		env RSLAB_FUZZ_SEED=$(FUZZ_SEED) RSLAB_FUZZ_ITERATIONS=$(FUZZ_ITERATIONS) \
		$(SELFTESTS)/run_tests.sh fuzz.sh dmesg_clean.sh

# Data races, on the KCSAN kernel (its own flavour: KCSAN excludes KASAN):
# the scripts that run rslab on several CPUs at once, then the kernel-log
# verdict, which fails on any KCSAN report; judged as vm-check judges any
# run. Not part of make check.
RACE_SCRIPTS := kunit.sh stress.sh fuzz.sh mempool.sh dmesg_clean.sh
race: setup
	$(MAKE) FLAVOUR=race test-modules selftests tools
	$(MAKE) FLAVOUR=race SUITE="$(RACE_SCRIPTS)" vm-check

# Deliberate bugs, one at a time, each in a copy of the tree, with the
# default-kernel suite run on each (scripts/mutants; MUTANTS= picks some).
mutants: setup
	scripts/mutants $(MUTANTS)

# The kernel's rustfmt settings, from its source tree (an O= build tree
# links it as source/; an in-tree build is its own source).
RUSTFMT_TOML = $(firstword $(wildcard $(KDIR)/source/.rustfmt.toml $(KDIR)/.rustfmt.toml))
fmt:
	@test -n "$(RUSTFMT_TOML)" || { echo "No .rustfmt.toml in $(KDIR) or $(KDIR)/source: run scripts/setup, or pass KDIR=" >&2; exit 1; }
	rustfmt --check --edition 2021 --config-path $(RUSTFMT_TOML) $(RUST_SOURCES)

# Another Rust-enabled tree, as a user would pass it: the debug kernel's
# build tree as KDIR=, with LLVM= naming its toolchain (here the folder of
# LLVM 19, which setup's kernels are built with; LLVM=1 where clang is on
# PATH), into a separate MO= folder. Checks that the build depends on none
# of the cached flavours' variables. Only rustc's variables come along.
FOREIGN_MODDIR := $(CURDIR)/build/foreign
FOREIGN_LLVM := /usr/lib/llvm$(RSLAB_LLVM)/bin/
foreign-check:
	$(MAKE) KDIR=$(RSLAB_CACHE)/kernel-debug LLVM=$(FOREIGN_LLVM) MODDIR=$(FOREIGN_MODDIR) \
		KMAKE_ENV="$(KMAKE_ENV)" modules
	@test -e $(FOREIGN_MODDIR)/rust/rslab.ko && echo "foreign-check: built against KDIR=$(RSLAB_CACHE)/kernel-debug LLVM=$(FOREIGN_LLVM)"

shell: setup
	$(MAKE) test-modules tools selftests
	$(VM_RUN) --flavour $(FLAVOUR) --interactive

# Also cleans objects of a plain in-tree `make -C $(KDIR) M=$(CURDIR)` build,
# which Kbuild refuses to mix with MO= builds.
clean:
	@if test -e $(KDIR)/Makefile; then $(KMAKE) clean; $(KMAKE) MO= clean; fi
	$(if $(KSFT_DIR),$(KSFT_MAKE) clean)
	rm -rf build

help:
	@sed -n '3,24p' Makefile
