// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the slab cache, run when the module loads.

use kernel::prelude::*;

#[kunit_tests(rslab_cache)]
mod cache_tests {
    use crate::cache::Cache;
    use crate::flags::CacheFlags;
    use kernel::prelude::*;

    #[test]
    fn reuse_after_free() -> Result {
        let cache = Cache::new(c"rslab_test_reuse", 64, 8, CacheFlags::NONE, None)?;
        let a = cache.alloc(GFP_KERNEL)?;
        // SAFETY: `a` came from `cache` and is not used again.
        unsafe { cache.free(a) };
        let b = cache.alloc(GFP_KERNEL)?;
        assert_eq!(a, b);
        // SAFETY: As above.
        unsafe { cache.free(b) };
        Ok(())
    }
}
