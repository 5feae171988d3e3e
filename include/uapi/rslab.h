/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * rslab.h - the /dev/rslab ioctl ABI, version 1, for C callers.
 *
 * The same ABI as rust/device/uapi.rs, which the module and rslabctl compile;
 * `make abi-check` proves the two agree (sizes, offsets, command numbers).
 * Documentation/rslab-abi.rst describes every command.
 */
#ifndef _UAPI_RSLAB_H
#define _UAPI_RSLAB_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define RSLAB_ABI_VERSION	1
#define RSLAB_IOC_MAGIC		0xB9
#define RSLAB_NAME_LEN		32
#define RSLAB_BULK_MAX		1024
#define RSLAB_MAX_OBJECT_SIZE	(1U << 20)
#define RSLAB_MAX_POOL_ORDER	8
#define RSLAB_MAX_POOL_MIN_NR	(1U << 16)
#define RSLAB_KMALLOC		0
#define RSLAB_NR_EVENTS		11

/* struct rslab_alloc.flags */
#define RSLAB_ALLOC_NOWAIT	(1U << 0)

/* struct rslab_cache_create.flags */
#define RSLAB_CACHE_HWCACHE_ALIGN	(1U << 0)
#define RSLAB_CACHE_POISON		(1U << 1)
#define RSLAB_CACHE_RED_ZONE		(1U << 2)
#define RSLAB_CACHE_CONSISTENCY_CHECKS	(1U << 3)

/* struct rslab_pool_create.backend */
#define RSLAB_BACKEND_CACHE	0
#define RSLAB_BACKEND_KMALLOC	1
#define RSLAB_BACKEND_PAGES	2

struct rslab_info {
	__u32 version;
	__u32 kmalloc_classes;
	__u64 max_objects;
	__u64 max_bytes;
	__u64 max_total_bytes;
	__u64 max_object_size;
};

struct rslab_handle {
	__u32 version;
	__u32 flags;
	__u64 id;
};

struct rslab_cache_create {
	__u32 version;
	__u32 flags;
	__u32 size;
	__u32 align;
	char name[RSLAB_NAME_LEN];
	__u64 id;
};

struct rslab_alloc {
	__u32 version;
	__u32 flags;
	__u64 source;
	__u32 size;
	__u32 reserved;
	__u64 id;
};

struct rslab_io {
	__u32 version;
	__u32 flags;
	__u64 id;
	__u32 offset;
	__u32 len;
	__u64 buf;
};

struct rslab_bulk {
	__u32 version;
	__u32 flags;
	__u64 cache;
	__u32 count;
	__u32 reserved;
	__u64 ids;
};

struct rslab_pool_create {
	__u32 version;
	__u32 flags;
	__u32 backend;
	__u32 min_nr;
	__u64 cache;
	__u32 size;
	__u32 order;
	char name[RSLAB_NAME_LEN];
	__u64 id;
};

struct rslab_pool_resize {
	__u32 version;
	__u32 flags;
	__u64 id;
	__u32 min_nr;
	__u32 reserved;
};

struct rslab_cache_info {
	__u32 version;
	__u32 flags;
	__u64 id;
	__u32 object_size;
	__u32 size;
	__u32 align;
	__u32 order;
	__u32 objs_per_slab;
	__u32 cache_flags;
	__u64 active_objs;
	__u64 num_objs;
	__u64 active_slabs;
	__u64 num_slabs;
	__u64 pages;
	__u64 events[RSLAB_NR_EVENTS];
};

struct rslab_pool_info {
	__u32 version;
	__u32 flags;
	__u64 id;
	__u32 backend;
	__u32 element_size;
	__u64 min_nr;
	__u64 curr_nr;
	__u64 outstanding;
	__u64 alloc_backend;
	__u64 alloc_reserve;
	__u64 waits;
	__u64 failures;
	__u64 free_reserve;
	__u64 free_backend;
};

#define RSLAB_IOC_INFO		_IOR(RSLAB_IOC_MAGIC, 0, struct rslab_info)
#define RSLAB_IOC_CACHE_CREATE	_IOWR(RSLAB_IOC_MAGIC, 1, struct rslab_cache_create)
#define RSLAB_IOC_CACHE_DESTROY	_IOW(RSLAB_IOC_MAGIC, 2, struct rslab_handle)
#define RSLAB_IOC_ALLOC		_IOWR(RSLAB_IOC_MAGIC, 3, struct rslab_alloc)
#define RSLAB_IOC_FREE		_IOW(RSLAB_IOC_MAGIC, 4, struct rslab_handle)
#define RSLAB_IOC_WRITE		_IOW(RSLAB_IOC_MAGIC, 5, struct rslab_io)
#define RSLAB_IOC_READ		_IOW(RSLAB_IOC_MAGIC, 6, struct rslab_io)
#define RSLAB_IOC_BULK_ALLOC	_IOW(RSLAB_IOC_MAGIC, 7, struct rslab_bulk)
#define RSLAB_IOC_BULK_FREE	_IOW(RSLAB_IOC_MAGIC, 8, struct rslab_bulk)
#define RSLAB_IOC_POOL_CREATE	_IOWR(RSLAB_IOC_MAGIC, 9, struct rslab_pool_create)
#define RSLAB_IOC_POOL_RESIZE	_IOW(RSLAB_IOC_MAGIC, 10, struct rslab_pool_resize)
#define RSLAB_IOC_POOL_DESTROY	_IOW(RSLAB_IOC_MAGIC, 11, struct rslab_handle)
#define RSLAB_IOC_SHRINK	_IOW(RSLAB_IOC_MAGIC, 12, struct rslab_handle)
#define RSLAB_IOC_CACHE_INFO	_IOWR(RSLAB_IOC_MAGIC, 13, struct rslab_cache_info)
#define RSLAB_IOC_POOL_INFO	_IOWR(RSLAB_IOC_MAGIC, 14, struct rslab_pool_info)

#endif /* _UAPI_RSLAB_H */
