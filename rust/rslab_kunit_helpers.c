// SPDX-License-Identifier: GPL-2.0
/* rslab_kunit.ko's copy of the C helpers (see Kbuild). */
#include "rslab_helpers.c"

#include <kunit/test.h>
#include <kunit/test-bug.h>

/*
 * Reports (see rust/cache/debug.rs). A report made by a KUnit test is one
 * the test provoked and counts, so it is neither printed nor tainting, as
 * slab_add_kunit_errors() makes SLUB's own tests' reports. (rslab.ko runs no
 * test, so it prints every report.)
 */
bool rslab_report_in_kunit(void)
{
	return kunit_get_current_test() != NULL;
}

/*
 * Marks the running KUnit case skipped, with @why: for a case whose subject
 * this machine lacks (the Rust KUnit macros have no skip of their own).
 */
void rslab_kunit_skip(const char *why)
{
	struct kunit *test = kunit_get_current_test();

	if (test)
		kunit_mark_skipped(test, "%s", why);
}

#ifdef CONFIG_KASAN_GENERIC
/*
 * Whether generic KASAN lets the byte at @addr be accessed, from its shadow
 * byte (0: the whole granule; 1 to 7: that many first bytes; else none),
 * without making an access that it would report.
 */
bool rslab_kunit_kasan_accessible(const void *addr)
{
	s8 shadow = *(s8 *)kasan_mem_to_shadow(addr);

	return shadow == 0 ||
	       (shadow > 0 && ((unsigned long)addr & ((1UL << KASAN_SHADOW_SCALE_SHIFT) - 1)) < shadow);
}
#endif

/*
 * One byte at @p, read by instrumented C: provoke.rs's deliberate
 * out-of-bounds read, which KASAN must report here.
 */
u8 rslab_kunit_read_byte(const void *p)
{
	return READ_ONCE(*(const u8 *)p);
}
