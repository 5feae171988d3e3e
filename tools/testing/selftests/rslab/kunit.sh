#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs the KUnit suites: loads each test module (rslab_kunit.ko, which is
# rslab with its suites, and kmalloc_demo_test.ko), which makes KUnit run
# them, and reports every case as a KTAP test case of its own. The results
# are the kernel's own (/sys/kernel/debug/kunit/SUITE/results, read before
# the module goes), checked against kunit.manifest: a suite or a case that
# did not run fails, as does one the manifest does not know. Runs inside the
# VM as root; prints KTAP.

source "$(dirname "$0")/ktap_helpers.sh"
ksft_require

MANIFEST=$(dirname "$0")/kunit.manifest
KUNIT_DFS=/sys/kernel/debug/kunit
# Where each test module is, relative to the flavour's module directory.
declare -A KO=([kmalloc_demo_test]=samples/kmalloc_demo [rslab_kunit]=rust)

results=()

# suite_results SUITE CASES: the results of SUITE, expected to have CASES
# cases, as result lines.
suite_results() {
	local suite=$1 want=$2 file=$KUNIT_DFS/$1/results line cases=0 verdict=
	[ -r "$file" ] || { results+=("not ok $suite: no KUnit results (the suite did not run)"); return; }
	# The file is the suite's KTAP: its cases indented, its own result last.
	while IFS= read -r line; do
		if [[ $line =~ ^[[:space:]]+(ok|not\ ok)\ [0-9]+\ ([^#]*[^\ #])(\ #\ (SKIP.*))? ]]; then
			cases=$((cases + 1))
			results+=("${BASH_REMATCH[1]} $suite: ${BASH_REMATCH[2]}${BASH_REMATCH[4]:+ # ${BASH_REMATCH[4]}}")
		elif [[ $line =~ ^(ok|not\ ok)\ [0-9]+\ $suite ]]; then
			verdict=${BASH_REMATCH[1]}
		fi
	done < "$file"
	[ -n "$verdict" ] || results+=("not ok $suite: no suite result")
	[ "$verdict" != "not ok" ] || results+=("not ok $suite: the suite failed")
	[ $cases -eq "$want" ] || results+=("not ok $suite: $cases cases ran, the manifest lists $want")
}

# run_module MODULE: load MODULE, collect its suites' results, unload it.
run_module() {
	local mod=$1 got suite cases
	got=$(load_errno "$RSLAB_MODDIR/${KO[$mod]}/$mod.ko")
	if [ "$got" != OK ]; then
		results+=("not ok $mod: load failed with $got")
		return
	fi
	while read -r m suite cases; do
		[ "$m" = "$mod" ] && suite_results "$suite" "$cases"
	done < <(grep -v '^#' "$MANIFEST")
	# Suites the module ran that the manifest does not list.
	for suite in $(ls "$KUNIT_DFS"); do
		grep -q "^$mod $suite " "$MANIFEST" || [[ $suite != rslab* && $suite != kmalloc_demo* ]] ||
			results+=("not ok $suite: ran, but kunit.manifest does not list it")
	done
	rmmod "$mod" || results+=("not ok $mod: rmmod failed")
}

[ -d "$KUNIT_DFS" ] || { echo "no $KUNIT_DFS: a kernel without KUnit debugfs"; exit $KSFT_SKIP; }
for mod in $(grep -v '^#' "$MANIFEST" | awk '{ print $1 }' | uniq); do run_module "$mod"; done

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
