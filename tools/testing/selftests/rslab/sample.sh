#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The typed-cache sample (samples/typed_cache/), in rslab_sample.ko: it
# queues 16 requests in a red-zoned TypedCache, each built in place with a
# lock in it, completes every other one (dropping it frees it) and keeps
# the rest in flight until unload, which cancels them. The log must say
# exactly that, the cache must end empty, and nothing may be reported.
# Runs inside the VM as root; prints KTAP.

source "$(dirname "$0")/ktap_helpers.sh"
ksft_require

KO=$RSLAB_MODDIR/rust/rslab_sample.ko

sample_lines() { kmsg_since | grep -F 'typed_cache sample:'; }

test_load() {
	local got want="" s
	kmsg_mark
	got=$(load_errno "$KO")
	[ "$got" = OK ] || { echo "insmod rslab_sample.ko: $got"; return 1; }
	for s in 0 16 32 48 64 80 96 112; do
		want+="<6>rslab: typed_cache sample: request at sector $s done, 4096 bytes"$'\n'
	done
	want+="<6>rslab: typed_cache sample: 16 requests queued, 8 in flight, 8 objects in rslab_sample_requests"
	expect_lines "$want" "$(sample_lines)"
}

test_unload() {
	kmsg_mark
	rmmod rslab_sample || return 1
	! module_loaded rslab_sample || { echo "still loaded"; return 1; }
	expect_lines "<6>rslab: typed_cache sample: 8 requests cancelled, 0 objects left" "$(sample_lines)" || return 1
	if kmsg_since | grep -E 'BUG|WARNING|rslab_sample_requests:'; then
		echo "the unload reported the above"
		return 1
	fi
}

ktap_header
ktap_plan 2
ktap_test "rslab_sample.ko builds 16 requests in place, completes 8, keeps 8 in flight" test_load
ktap_test "unloading cancels the 8 in flight and leaves the cache empty, reporting nothing" test_unload
ktap_finished
