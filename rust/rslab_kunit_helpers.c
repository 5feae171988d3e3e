// SPDX-License-Identifier: GPL-2.0
/* rslab_kunit.ko's copy of the C helpers (see Kbuild). */
#include "rslab_helpers.c"

#include <kunit/test.h>

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
