#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs the in-module KUnit suites: loads each test module, which makes KUnit
# run its suites, and reports every KUnit test case from the kernel log as a
# KTAP test case of its own. Runs inside the VM as root; prints KTAP.

source "$(dirname "$0")/ktap_helpers.sh"

# Test modules, relative to the flavour's module directory.
KUNIT_MODULES=(
	samples/kmalloc_demo/kmalloc_demo_test.ko
	rust/rslab.ko
)

results=()
# run_module KO: load KO, collect its KUnit case results, unload it.
run_module() {
	local ko=$RSLAB_MODDIR/$1 name got log
	name=$(basename "$ko" .ko)
	kmsg_mark
	got=$(load_errno "$ko")
	if [ "$got" != OK ]; then
		results+=("not ok $name: load failed with $got")
		return
	fi
	log=$(kmsg_since)
	rmmod "$name" || results+=("not ok $name: rmmod failed")
	# KUnit prints each case as "    ok N name" inside its suite's subtest,
	# and the suite as "ok N suite".
	local suites=0 suite=? line
	while IFS= read -r line; do
		if [[ $line =~ ^\<[0-9]\>\ {4}#\ Subtest:\ (.*)$ ]]; then
			suite=${BASH_REMATCH[1]}
		elif [[ $line =~ ^\<[0-9]\>\ {4}(ok|not\ ok)\ [0-9]+\ ([^#]*[^\ #])(\ #\ (SKIP.*))? ]]; then
			results+=("${BASH_REMATCH[1]} $name: $suite: ${BASH_REMATCH[2]}${BASH_REMATCH[4]:+ # ${BASH_REMATCH[4]}}")
		elif [[ $line =~ ^\<[0-9]\>(ok|not\ ok)\ [0-9]+\ ([^\ ]+) ]]; then
			suites=$((suites + 1))
			[ "${BASH_REMATCH[1]}" = ok ] || results+=("not ok $name: suite ${BASH_REMATCH[2]}")
		fi
	done <<< "$log"
	# A module whose suites never ran must not pass silently.
	[ $suites -gt 0 ] || results+=("not ok $name: no KUnit suite result in the log")
}

for m in "${KUNIT_MODULES[@]}"; do run_module "$m"; done

ktap_header
ktap_plan ${#results[@]}
for r in "${results[@]}"; do
	case $r in
	"ok "*"# SKIP"*) desc=${r#ok }; ktap_skip "${desc%% # SKIP*}" "${desc#* # SKIP}" ;;
	"ok "*) ktap_pass "${r#ok }" ;;
	*) ktap_fail "${r#not ok }" ;;
	esac
done
ktap_finished
