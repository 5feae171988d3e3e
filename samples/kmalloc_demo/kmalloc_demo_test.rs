// SPDX-License-Identifier: GPL-2.0

//! KUnit tests for the kmalloc_demo buffer, as a module of their own.
//!
//! Loading `kmalloc_demo.ko` can only reach the paths its parameters select.
//! These tests drive [`DemoBuffer`] directly so that every path is exercised:
//! invalid parameters, refused allocations, zeroing, both write clamps, a
//! write to an unallocated buffer and double frees. They live in a separate
//! module so that their log lines never mix with the demo's own.

use kernel::prelude::*;

#[path = "demo_buffer.rs"]
mod demo_buffer;

module! {
    type: KmallocDemoTest,
    name: "kmalloc_demo_test",
    authors: ["rslab developers"],
    description: "KUnit tests for the kmalloc_demo sample",
    license: "GPL",
}

/// The module does nothing itself; KUnit runs the suite below on load.
struct KmallocDemoTest;

impl kernel::Module for KmallocDemoTest {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        Ok(KmallocDemoTest)
    }
}

#[kunit_tests(kmalloc_demo)]
mod tests {
    use super::demo_buffer::{DemoBuffer, LIVE, NAME_MAX};
    use core::sync::atomic::Ordering::Relaxed;
    use kernel::prelude::*;

    #[test]
    fn init_rejects_zero_size() {
        let mut buf = DemoBuffer::new("zero");
        assert_eq!(buf.init(0), Err(EINVAL));
        assert_eq!(buf.size(), 0);
    }

    #[test]
    fn init_rejects_empty_name() {
        let mut buf = DemoBuffer::new("");
        assert_eq!(buf.init(16), Err(EINVAL));
        assert!(buf.contents().is_none());
    }

    #[test]
    fn init_refuses_impossible_sizes() {
        let mut buf = DemoBuffer::new("huge");
        // Larger than any kmalloc can serve, and larger than any Layout.
        for size in [1usize << 40, usize::MAX] {
            assert_eq!(buf.init(size), Err(ENOMEM));
            assert_eq!(buf.size(), 0);
        }
    }

    #[test]
    fn init_zeroes_the_buffer() {
        let mut buf = DemoBuffer::new("zeroed");
        assert_eq!(buf.init(4096), Ok(()));
        assert_eq!(buf.size(), 4096);
        assert!(buf.contents().is_some_and(|c| c.iter().all(|&b| b == 0)));
    }

    /// The old buffer is freed, not leaked: one live buffer after the
    /// second init, none after the drop.
    #[test]
    fn reinit_replaces_the_buffer() {
        let live = LIVE.load(Relaxed);
        let mut buf = DemoBuffer::new("again");
        assert_eq!(buf.init(16), Ok(()));
        assert_eq!(buf.init(32), Ok(()));
        assert_eq!(buf.size(), 32);
        assert_eq!(LIVE.load(Relaxed), live + 1);
        drop(buf);
        assert_eq!(LIVE.load(Relaxed), live);
    }

    #[test]
    fn write_clamps_to_buffer_size() {
        let mut buf = DemoBuffer::new("small");
        assert_eq!(buf.init(8), Ok(()));
        assert_eq!(buf.write(b"0123456789", 10), 7);
        assert_eq!(buf.contents(), Some(&b"0123456\0"[..]));
    }

    #[test]
    fn write_clamps_to_data_length() {
        let mut buf = DemoBuffer::new("short");
        assert_eq!(buf.init(8), Ok(()));
        // The C module would read 5 bytes past "ab" here.
        assert_eq!(buf.write(b"ab", 7), 2);
        assert_eq!(buf.contents(), Some(&b"ab\0\0\0\0\0\0"[..]));
    }

    #[test]
    fn write_to_unallocated_buffer_does_nothing() {
        let mut buf = DemoBuffer::new("unallocated");
        assert_eq!(buf.write(b"data", 4), 0);
        assert!(buf.contents().is_none());
    }

    #[test]
    fn free_twice_is_harmless() {
        let mut buf = DemoBuffer::new("twice");
        assert_eq!(buf.init(16), Ok(()));
        buf.free();
        buf.free();
        assert_eq!(buf.size(), 0);
    }

    #[test]
    fn long_names_are_cut_like_the_c_field() {
        let buf = DemoBuffer::new("a_name_that_is_longer_than_thirty_one_bytes");
        assert_eq!(buf.name().len(), NAME_MAX);
    }
}
