#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Selftest for the kmalloc_demo sample: every log line of load and unload, in
# order and at its level; the -EINVAL and -ENOMEM paths; and that a failed
# load leaves nothing behind. Runs inside the VM as root; prints KTAP.

source "$(dirname "$0")/ktap_helpers.sh"
ksft_require

KO=$RSLAB_MODDIR/samples/kmalloc_demo/kmalloc_demo.ko
TAG='kmalloc_demo: \[kmalloc-demo\]'
# What %p prints on 64-bit: "0x", then 8 zero digits and the 32-bit hash.
HASHED='0x00000000[0-9a-f]{8}'
IMPOSSIBLE=$((1 << 40))

UART_INIT="<6>$TAG uart_data_buf init success: addr=($HASHED), size=1024"
ETH_INIT="<6>$TAG eth_frame_buf init success: addr=($HASHED), size=4096"

# demo_lines: the demo's own log lines since the last mark.
demo_lines() { kmsg_since | grep -F '[kmalloc-demo]'; }

# load OUTCOME [PARAM=VALUE]...: load the demo and check the errno; on
# failure, check that nothing stayed loaded.
load() {
	local want=$1 got
	shift
	kmsg_mark
	got=$(load_errno "$KO" "$@")
	[ "$got" = "$want" ] || { echo "load $*: expected $want, got $got"; return 1; }
	if [ "$want" != OK ] && module_loaded kmalloc_demo; then
		echo "kmalloc_demo is still loaded after a failed load"
		return 1
	fi
}

# addr_of LINE_REGEX: the hashed address that LINE_REGEX captures in the log.
addr_of() { demo_lines | sed -nE "s/^$1\$/\\1/p"; }

test_load_lines() {
	load OK || return 1
	expect_lines "<6>$TAG Module loading...
$UART_INIT
$ETH_INIT
<6>$TAG Written to uart_data_buf: UART hardware data: 0x12 0x34 0x \\(actual 32 bytes\\)
<6>$TAG Written to eth_frame_buf: Ethernet frame: Destination=00:11:22:33:44:55, Source=66:77:88:9 \\(actual 64 bytes\\)
<6>$TAG Module loaded successfully!" "$(demo_lines)" || return 1
	UART_ADDR=$(addr_of "$UART_INIT") ETH_ADDR=$(addr_of "$ETH_INIT")
	[ "$UART_ADDR" != "$ETH_ADDR" ] || { echo "both buffers logged as $UART_ADDR"; return 1; }
}

# The kernel crate's module! gives parameters no sysfs file (perm 0), so
# check what modinfo declares; the defaults' effect is checked by the sizes
# in the load lines.
test_parameters() {
	local parm
	parm=$(modinfo -F parm "$KO") || return 1
	echo "$parm"
	grep -q '^uart_buf_size:' <<< "$parm" && grep -q '^eth_buf_size:' <<< "$parm"
}

test_unload_lines() {
	kmsg_mark
	rmmod kmalloc_demo || return 1
	! module_loaded kmalloc_demo || { echo "still loaded after rmmod"; return 1; }
	# The freed addresses are the ones the init lines logged.
	expect_lines "<6>$TAG Module unloading...
<6>$TAG uart_data_buf memory freed: original addr=$UART_ADDR
<6>$TAG eth_frame_buf memory freed: original addr=$ETH_ADDR
<6>$TAG Module unloaded!" "$(demo_lines)"
}

test_small_buffer_clamps_write() {
	load OK uart_buf_size=16 || return 1
	rmmod kmalloc_demo || return 1
	demo_lines | grep -qxE "<6>$TAG Written to uart_data_buf: UART hardware d \\(actual 15 bytes\\)" ||
		{ echo "no 15-byte write line:"; demo_lines; return 1; }
}

test_uart_size_zero() {
	load EINVAL uart_buf_size=0 || return 1
	expect_lines "<6>$TAG Module loading...
<3>$TAG Invalid buffer init parameters" "$(demo_lines)"
}

test_eth_size_zero() {
	load EINVAL eth_buf_size=0 || return 1
	expect_lines "<6>$TAG Module loading...
$UART_INIT
<3>$TAG Invalid buffer init parameters
<6>$TAG uart_data_buf memory freed: original addr=$HASHED" "$(demo_lines)"
}

test_uart_size_impossible() {
	load ENOMEM uart_buf_size=$IMPOSSIBLE || return 1
	expect_lines "<6>$TAG Module loading...
<3>$TAG uart_data_buf allocation failed \\($IMPOSSIBLE bytes\\)" "$(demo_lines)"
}

test_eth_size_impossible() {
	load ENOMEM eth_buf_size=$IMPOSSIBLE || return 1
	expect_lines "<6>$TAG Module loading...
$UART_INIT
<3>$TAG eth_frame_buf allocation failed \\($IMPOSSIBLE bytes\\)
<6>$TAG uart_data_buf memory freed: original addr=$HASHED" "$(demo_lines)" || return 1
	# The refusal carried __GFP_NOWARN: no allocator warning either.
	local log
	log=$(kmsg_since) || return 1
	! grep -E "$RSLAB_REPORT_RE" <<< "$log"
}

ktap_header
ktap_plan 8
ktap_test "load logs every line in order, addresses hashed" test_load_lines
ktap_test "modinfo declares uart_buf_size and eth_buf_size" test_parameters
ktap_test "unload logs every line in order and frees both buffers" test_unload_lines
ktap_test "uart_buf_size=16 clamps the write to 15 bytes" test_small_buffer_clamps_write
ktap_test "uart_buf_size=0 fails with EINVAL, nothing loaded" test_uart_size_zero
ktap_test "eth_buf_size=0 fails with EINVAL after freeing buffer 1" test_eth_size_zero
ktap_test "uart_buf_size=2^40 fails with ENOMEM, nothing loaded" test_uart_size_impossible
ktap_test "eth_buf_size=2^40 fails with ENOMEM after freeing buffer 1" test_eth_size_impossible
ktap_finished
