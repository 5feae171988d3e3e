// SPDX-License-Identifier: GPL-2.0
/*
 * rslab_failnth - fail every allocation site of every /dev/rslab call, one
 * at a time, with the kernel's per-task fail-nth (see
 * Documentation/fault-injection/fault-injection.rst, "Systematic faults
 * using fail-nth").
 *
 *   rslab_failnth [CALL]...   (default: every call)
 *
 * For each call (opening the device, each ioctl, closing it) and for
 * n = 1, 2, ...: set up the call's preconditions on a new file, write n to
 * /proc/thread-self/fail-nth, make the call, and read fail-nth back. If no
 * fault was injected, the call has fewer than n allocation sites and the
 * sweep of that call is done. Otherwise:
 *   - the call must succeed (the failure was absorbed, as a pool's reserve
 *     absorbs its backend's) or fail with exactly ENOMEM;
 *   - a failed call must leave the device's counters (debugfs rslab/device)
 *     as they were before it;
 *   - once the file is closed, the counters must be back to zero and no
 *     cache or pool of the test's may be registered.
 *
 * Which allocations count is set by the caller through debugfs failslab/
 * and fail_page_alloc/ (the selftests limit them to calls with rslab.ko on
 * the stack; ignore-gfp-wait must be N). Fully deterministic: no random
 * number is involved, so a failure reproduces with the same CALL.
 *
 * Prints one line a call, "CALL: N sites, F ENOMEM, A absorbed", and a
 * "FAIL: ..." line for each violation; exits 1 if there was any.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../../../../include/uapi/rslab.h"

#define DEVICE		"/dev/rslab"
#define DEVICE_STATS	"/sys/kernel/debug/rslab/device"
#define CACHE		"rslab_failnth-c"
#define POOL		"rslab_failnth-p"
/* No call has nearly this many allocation sites: a sweep that gets here is stuck. */
#define MAX_SITES	10000

static int failures;

#define FAIL(...) do { printf("FAIL: " __VA_ARGS__); putchar('\n'); failures++; } while (0)

/* The device's usage: open files, handles and bytes charged. */
struct usage {
	long long files, objects, bytes;
};

static int usage(struct usage *u)
{
	FILE *f = fopen(DEVICE_STATS, "r");
	char key[64];
	long long v;

	if (!f)
		return -1;
	*u = (struct usage){ -1, -1, -1 };
	while (fscanf(f, "%63s %lld", key, &v) == 2) {
		if (!strcmp(key, "files"))
			u->files = v;
		else if (!strcmp(key, "objects"))
			u->objects = v;
		else if (!strcmp(key, "bytes"))
			u->bytes = v;
	}
	fclose(f);
	return u->files < 0 || u->objects < 0 || u->bytes < 0 ? -1 : 0;
}

static int same(const struct usage *a, const struct usage *b)
{
	return a->files == b->files && a->objects == b->objects && a->bytes == b->bytes;
}

/* Is a cache or pool of this name registered (in slabinfo or poolinfo)? */
static int registered(const char *name)
{
	const char *files[] = { "/sys/kernel/debug/rslab/slabinfo",
				"/sys/kernel/debug/rslab/poolinfo" };
	char line[512];
	size_t i, n = strlen(name);
	int found = 0;

	for (i = 0; i < 2; i++) {
		FILE *f = fopen(files[i], "r");

		while (f && fgets(line, sizeof(line), f))
			found |= !strncmp(line, name, n) && line[n] == ' ';
		if (f)
			fclose(f);
	}
	return found;
}

static int fail_nth = -1;

/* Arms fail-nth for this thread: its n-th counted allocation fails. */
static void arm(int n)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%d", n);

	if (pwrite(fail_nth, buf, len, 0) != len) {
		perror("rslab_failnth: writing fail-nth");
		exit(2);
	}
}

/* Disarms fail-nth; whether the armed fault was injected. */
static int disarm(void)
{
	char buf[16] = "";

	if (pread(fail_nth, buf, sizeof(buf) - 1, 0) <= 0) {
		perror("rslab_failnth: reading fail-nth");
		exit(2);
	}
	arm(0);
	return atoi(buf) == 0;
}

/* --- the calls and their preconditions ------------------------------------ */

/*
 * Handles made by set-up, in order. A handle is never reused, and set-up
 * runs with nothing failing, so they are always these numbers.
 */
enum { H_CACHE = 1, H_OBJECT, H_POOL, H_POOL_OBJECT };

static long do_ioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg);
}

static long cache_create(int fd, __u32 flags, __u32 size)
{
	struct rslab_cache_create c = { .version = RSLAB_ABI_VERSION, .flags = flags,
					.size = size };

	strcpy(c.name, CACHE);
	return do_ioctl(fd, RSLAB_IOC_CACHE_CREATE, &c);
}

static long pool_create(int fd, __u32 backend)
{
	struct rslab_pool_create p = { .version = RSLAB_ABI_VERSION, .backend = backend,
				       .min_nr = 4 };

	strcpy(p.name, POOL);
	if (backend == RSLAB_BACKEND_CACHE)
		p.cache = H_CACHE;
	else if (backend == RSLAB_BACKEND_KMALLOC)
		p.size = 1000;
	else
		p.order = 1;
	return do_ioctl(fd, RSLAB_IOC_POOL_CREATE, &p);
}

static long alloc(int fd, __u64 source, __u32 size)
{
	struct rslab_alloc a = { .version = RSLAB_ABI_VERSION, .source = source, .size = size };

	return do_ioctl(fd, RSLAB_IOC_ALLOC, &a);
}

static long handle(int fd, unsigned long cmd, __u64 id)
{
	struct rslab_handle h = { .version = RSLAB_ABI_VERSION, .id = id };

	return do_ioctl(fd, cmd, &h);
}

static long io(int fd, unsigned long cmd, __u64 id)
{
	static char buf[64] = "rslab_failnth";
	struct rslab_io o = { .version = RSLAB_ABI_VERSION, .id = id, .len = sizeof(buf),
			      .buf = (unsigned long)buf };

	return do_ioctl(fd, cmd, &o);
}

static __u64 bulk_ids[16];

static long bulk(int fd, unsigned long cmd)
{
	struct rslab_bulk b = { .version = RSLAB_ABI_VERSION, .cache = H_CACHE, .count = 16,
				.ids = (unsigned long)bulk_ids };

	return do_ioctl(fd, cmd, &b);
}

static long pool_resize(int fd)
{
	struct rslab_pool_resize r = { .version = RSLAB_ABI_VERSION, .id = H_POOL, .min_nr = 64 };

	return do_ioctl(fd, RSLAB_IOC_POOL_RESIZE, &r);
}

static long cache_info(int fd)
{
	struct rslab_cache_info i = { .version = RSLAB_ABI_VERSION, .id = H_CACHE };

	return do_ioctl(fd, RSLAB_IOC_CACHE_INFO, &i);
}

static long pool_info(int fd)
{
	struct rslab_pool_info i = { .version = RSLAB_ABI_VERSION, .id = H_POOL };

	return do_ioctl(fd, RSLAB_IOC_POOL_INFO, &i);
}

/* A cache (1), an object of it (2), a pool over it (3), an object of the pool (4). */
static long setup_all(int fd)
{
	return cache_create(fd, 0, 64) || alloc(fd, H_CACHE, 0) ||
	       pool_create(fd, RSLAB_BACKEND_CACHE) || alloc(fd, H_POOL, 0);
}

static long setup_cache(int fd)
{
	return cache_create(fd, 0, 64);
}

/* A cache (1) and an object of it (2). */
static long setup_object(int fd)
{
	return cache_create(fd, 0, 64) || alloc(fd, H_CACHE, 0);
}

static long setup_bulk(int fd)
{
	return setup_all(fd) || bulk(fd, RSLAB_IOC_BULK_ALLOC);
}

static long c_open(int fd)		{ (void)fd; return 0; }
static long c_cache_create(int fd)	{ return cache_create(fd, 0, 200); }
static long c_cache_create_debug(int fd)
{
	return cache_create(fd, RSLAB_CACHE_POISON | RSLAB_CACHE_RED_ZONE |
			    RSLAB_CACHE_CONSISTENCY_CHECKS, 24);
}
static long c_pool_cache(int fd)	{ return pool_create(fd, RSLAB_BACKEND_CACHE); }
static long c_pool_kmalloc(int fd)	{ return pool_create(fd, RSLAB_BACKEND_KMALLOC); }
static long c_pool_pages(int fd)	{ return pool_create(fd, RSLAB_BACKEND_PAGES); }
static long c_alloc_cache(int fd)	{ return alloc(fd, H_CACHE, 0); }
static long c_alloc_pool(int fd)	{ return alloc(fd, H_POOL, 0); }
static long c_alloc_kmalloc(int fd)	{ return alloc(fd, RSLAB_KMALLOC, 100); }
static long c_alloc_large(int fd)	{ return alloc(fd, RSLAB_KMALLOC, 3 * 4096 * 8); }
static long c_free(int fd)		{ return handle(fd, RSLAB_IOC_FREE, H_OBJECT); }
static long c_write(int fd)		{ return io(fd, RSLAB_IOC_WRITE, H_OBJECT); }
static long c_read(int fd)		{ return io(fd, RSLAB_IOC_READ, H_OBJECT); }
static long c_bulk_alloc(int fd)	{ return bulk(fd, RSLAB_IOC_BULK_ALLOC); }
static long c_bulk_free(int fd)		{ return bulk(fd, RSLAB_IOC_BULK_FREE); }
static long c_pool_resize(int fd)	{ return pool_resize(fd); }
static long c_shrink(int fd)		{ return handle(fd, RSLAB_IOC_SHRINK, H_CACHE); }
static long c_cache_info(int fd)	{ return cache_info(fd); }
static long c_pool_info(int fd)		{ return pool_info(fd); }
static long c_pool_destroy(int fd)
{
	return handle(fd, RSLAB_IOC_FREE, H_POOL_OBJECT) ||
	       handle(fd, RSLAB_IOC_POOL_DESTROY, H_POOL);
}
static long c_cache_destroy(int fd)
{
	return handle(fd, RSLAB_IOC_FREE, H_OBJECT) ||
	       handle(fd, RSLAB_IOC_CACHE_DESTROY, H_CACHE);
}

struct call {
	const char *name;
	long (*setup)(int fd);		/* before arming; NULL for none */
	long (*call)(int fd);		/* the call under test */
	int fault_at_close;		/* the fault is armed over close(2) instead */
};

static const struct call calls[] = {
	{ "open", NULL, c_open, 0 },
	{ "cache-create", NULL, c_cache_create, 0 },
	{ "cache-create-debug", NULL, c_cache_create_debug, 0 },
	{ "pool-create-cache", setup_cache, c_pool_cache, 0 },
	{ "pool-create-kmalloc", NULL, c_pool_kmalloc, 0 },
	{ "pool-create-pages", NULL, c_pool_pages, 0 },
	{ "alloc-cache", setup_all, c_alloc_cache, 0 },
	{ "alloc-pool", setup_all, c_alloc_pool, 0 },
	{ "alloc-kmalloc", NULL, c_alloc_kmalloc, 0 },
	{ "alloc-large", NULL, c_alloc_large, 0 },
	{ "free", setup_all, c_free, 0 },
	{ "write", setup_all, c_write, 0 },
	{ "read", setup_all, c_read, 0 },
	{ "bulk-alloc", setup_all, c_bulk_alloc, 0 },
	{ "bulk-free", setup_bulk, c_bulk_free, 0 },
	{ "pool-resize", setup_all, c_pool_resize, 0 },
	{ "shrink", setup_all, c_shrink, 0 },
	{ "cache-info", setup_all, c_cache_info, 0 },
	{ "pool-info", setup_all, c_pool_info, 0 },
	{ "pool-destroy", setup_all, c_pool_destroy, 0 },
	{ "cache-destroy", setup_object, c_cache_destroy, 0 },
	{ "close", setup_bulk, c_open, 1 },
};

/*
 * One attempt: the call with its n-th allocation failing. Returns 1 if
 * the fault was injected, 0 if the call has fewer than n sites, -1 if the
 * attempt could not be made.
 */
static int attempt(const struct call *c, int n, int *enomem)
{
	struct usage before, after;
	int fd = -1, injected;
	long rc = 0;
	int err = 0;

	if (!c->fault_at_close && c->call == c_open) {
		if (usage(&before))
			return -1;
		arm(n);
		fd = open(DEVICE, O_RDWR | O_CLOEXEC);
		err = errno;
		injected = disarm();
		rc = fd < 0 ? -1 : 0;
	} else {
		fd = open(DEVICE, O_RDWR | O_CLOEXEC);
		if (fd < 0 || (c->setup && c->setup(fd)) || usage(&before)) {
			printf("rslab_failnth: %s: set-up failed: %s\n", c->name, strerror(errno));
			return -1;
		}
		arm(n);
		if (c->fault_at_close) {
			close(fd);
			fd = -1;
		} else {
			rc = c->call(fd);
			err = errno;
		}
		injected = disarm();
	}
	if (rc && err != ENOMEM)
		FAIL("%s, site %d: failed with %s, not ENOMEM", c->name, n, strerrorname_np(err));
	if (rc) {
		++*enomem;
		if (usage(&after) || !same(&before, &after))
			FAIL("%s, site %d: a failed call changed the device's usage: files %lld -> %lld, "
			     "objects %lld -> %lld, bytes %lld -> %lld", c->name, n, before.files,
			     after.files, before.objects, after.objects, before.bytes, after.bytes);
	}
	if (fd >= 0)
		close(fd);
	if (usage(&after) || after.files || after.objects || after.bytes)
		FAIL("%s, site %d: after close: files %lld, objects %lld, bytes %lld (expected 0)",
		     c->name, n, after.files, after.objects, after.bytes);
	if (registered(CACHE) || registered(POOL))
		FAIL("%s, site %d: a cache or pool is still registered after close", c->name, n);
	return injected;
}

static int sweep(const struct call *c)
{
	int n, got, enomem = 0;

	for (n = 1; n <= MAX_SITES; n++) {
		got = attempt(c, n, &enomem);
		if (got < 0) {
			FAIL("%s: could not set up site %d", c->name, n);
			return 0;
		}
		if (!got)
			break;
	}
	if (n > MAX_SITES)
		FAIL("%s: more than %d sites: is fail-nth counting other calls?", c->name, MAX_SITES);
	printf("%s: %d sites, %d ENOMEM, %d absorbed\n", c->name, n - 1, enomem,
	       n - 1 - enomem);
	return n - 1;
}

int main(int argc, char **argv)
{
	size_t i;
	int a, total = 0, found;

	fail_nth = open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC);
	if (fail_nth < 0) {
		perror("rslab_failnth: /proc/thread-self/fail-nth (CONFIG_FAULT_INJECTION)");
		return 4;
	}
	for (i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		for (found = argc == 1, a = 1; a < argc; a++)
			found |= !strcmp(argv[a], calls[i].name);
		if (found)
			total += sweep(&calls[i]);
	}
	printf("%d allocation sites failed one at a time, %d violations\n", total, failures);
	return failures ? 1 : 0;
}
