// SPDX-License-Identifier: GPL-2.0
/*
 * rslab_sys - the system calls the rslab selftests need the exact errno of,
 * printed as its name ("OK" on success):
 *
 *   rslab_sys load MODULE.ko [PARAM=VALUE]...   finit_module(2)
 *   rslab_sys unload MODULE                      delete_module(2), O_NONBLOCK
 *   rslab_sys write FILE TEXT                    open(2) + write(2)
 *   rslab_sys ioctl CASE                         a malformed /dev/rslab ioctl
 *   rslab_sys abi                                the ABI as include/uapi/rslab.h has it
 *
 * The ioctl cases are the calls rslabctl cannot make, because it only
 * builds well-formed ones; they go through the C header, so they test it
 * too. A C helper rather than a script because it starts in milliseconds
 * under TCG, where an interpreter takes seconds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../../../include/uapi/rslab.h"

static int report(long rc)
{
	puts(rc < 0 ? strerrorname_np(errno) : "OK");
	return 0;
}

static int load(const char *module, int argc, char **argv)
{
	char params[4096] = "";
	int fd, i;

	for (i = 0; i < argc; i++) {
		if (i)
			strncat(params, " ", sizeof(params) - strlen(params) - 1);
		strncat(params, argv[i], sizeof(params) - strlen(params) - 1);
	}
	fd = open(module, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return report(fd);
	return report(syscall(SYS_finit_module, fd, params, 0));
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return report(fd);
	return report(write(fd, text, strlen(text)));
}

static int unload(const char *module)
{
	return report(syscall(SYS_delete_module, module, O_NONBLOCK));
}

/* A /dev/rslab file with a 64-byte cache (handle 1) and one object (2). */
static int open_with_object(void)
{
	struct rslab_cache_create cc = { .version = RSLAB_ABI_VERSION, .size = 64 };
	struct rslab_alloc a = { .version = RSLAB_ABI_VERSION, .source = 1 };
	int fd = open("/dev/rslab", O_RDWR | O_CLOEXEC);

	snprintf(cc.name, sizeof(cc.name), "rslab_sys-%d", getpid());
	if (fd < 0 || ioctl(fd, RSLAB_IOC_CACHE_CREATE, &cc) || cc.id != 1 ||
	    ioctl(fd, RSLAB_IOC_ALLOC, &a) || a.id != 2) {
		perror("rslab_sys: setting up a cache and an object");
		return -1;
	}
	return fd;
}

/* The cache's allocated objects: what a failed call must not change. */
static long long active_objs(int fd)
{
	struct rslab_cache_info ci = { .version = RSLAB_ABI_VERSION, .id = 1 };

	return ioctl(fd, RSLAB_IOC_CACHE_INFO, &ci) ? -1 : (long long)ci.active_objs;
}

/* A copy of a request in a read-only page: readable, but not writable back. */
static void *read_only(const void *req, size_t size)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memcpy(p, req, size);
	return mprotect(p, 4096, PROT_READ) ? NULL : p;
}

/* Is a cache or pool of this name registered (in slabinfo or poolinfo)? */
static int registered(const char *name)
{
	const char *files[] = { "/sys/kernel/debug/rslab/slabinfo",
				"/sys/kernel/debug/rslab/poolinfo" };
	char line[512];
	size_t i, n = strlen(name);

	for (i = 0; i < 2; i++) {
		FILE *f = fopen(files[i], "r");

		while (f && fgets(line, sizeof(line), f))
			if (!strncmp(line, name, n) && line[n] == ' ') {
				fclose(f);
				return 1;
			}
		if (f)
			fclose(f);
	}
	return 0;
}

/*
 * A call whose result cannot be written back (EFAULT) must undo what it
 * made: the cache, the object or the pool.
 */
static long unwritable_result(int fd, const char *c, char *name)
{
	struct rslab_cache_create cc = { .version = RSLAB_ABI_VERSION, .size = 32 };
	struct rslab_alloc a = { .version = RSLAB_ABI_VERSION, .source = 1 };
	struct rslab_pool_create pc = { .version = RSLAB_ABI_VERSION, .min_nr = 1,
					.backend = RSLAB_BACKEND_PAGES };
	void *ro = NULL;

	if (!strcmp(c, "ro-cache-create")) {
		snprintf(cc.name, sizeof(cc.name), "rslab_sys-ro-%d", getpid());
		strcpy(name, cc.name);
		ro = read_only(&cc, sizeof(cc));
		return ro ? ioctl(fd, RSLAB_IOC_CACHE_CREATE, ro) : -1;
	}
	if (!strcmp(c, "ro-pool-create")) {
		snprintf(pc.name, sizeof(pc.name), "rslab_sys-rop-%d", getpid());
		strcpy(name, pc.name);
		ro = read_only(&pc, sizeof(pc));
		return ro ? ioctl(fd, RSLAB_IOC_POOL_CREATE, ro) : -1;
	}
	if (!strcmp(c, "ro-alloc")) {
		ro = read_only(&a, sizeof(a));
		return ro ? ioctl(fd, RSLAB_IOC_ALLOC, ro) : -1;
	}
	fprintf(stderr, "rslab_sys: unknown ioctl case %s\n", c);
	exit(2);
}

static int bad_ioctl(const char *c)
{
	char made[RSLAB_NAME_LEN] = "";
	struct rslab_handle h = { .version = RSLAB_ABI_VERSION, .id = 2 };
	struct rslab_io io = { .version = RSLAB_ABI_VERSION, .id = 2, .len = 8 };
	struct rslab_bulk b = { .version = RSLAB_ABI_VERSION, .cache = 1, .count = 4 };
	char buf[8] = "x";
	int fd = open_with_object();
	long rc;

	if (fd < 0)
		return 1;
	io.buf = (unsigned long)buf;
	if (!strcmp(c, "unknown-type"))
		rc = ioctl(fd, _IOW('Z', 4, struct rslab_handle), &h);
	else if (!strcmp(c, "unknown-nr"))
		rc = ioctl(fd, _IOW(RSLAB_IOC_MAGIC, 99, struct rslab_handle), &h);
	else if (!strcmp(c, "wrong-size"))
		rc = ioctl(fd, _IOW(RSLAB_IOC_MAGIC, 4, struct rslab_io), &io);
	else if (!strcmp(c, "wrong-dir"))
		rc = ioctl(fd, _IOR(RSLAB_IOC_MAGIC, 4, struct rslab_handle), &h);
	else if (!strcmp(c, "wrong-version"))
		h.version = RSLAB_ABI_VERSION + 1, rc = ioctl(fd, RSLAB_IOC_FREE, &h);
	else if (!strcmp(c, "unknown-flags"))
		h.flags = 1, rc = ioctl(fd, RSLAB_IOC_FREE, &h);
	else if (!strcmp(c, "bad-arg"))
		rc = ioctl(fd, RSLAB_IOC_FREE, NULL);
	else if (!strcmp(c, "kernel-arg"))
		rc = ioctl(fd, RSLAB_IOC_FREE, (void *)0xffff888000000000UL);
	else if (!strcmp(c, "bad-write-buf"))
		io.buf = 0x1000, rc = ioctl(fd, RSLAB_IOC_WRITE, &io);
	else if (!strcmp(c, "bad-read-buf"))
		io.buf = 0, rc = ioctl(fd, RSLAB_IOC_READ, &io);
	else if (!strcmp(c, "bad-bulk-ids"))
		b.ids = 0x1000, rc = ioctl(fd, RSLAB_IOC_BULK_ALLOC, &b);
	else if (!strcmp(c, "overflow"))
		io.offset = 0xffffffff, rc = ioctl(fd, RSLAB_IOC_WRITE, &io);
	else if (!strncmp(c, "ro-", 3))
		rc = unwritable_result(fd, c, made);
	else {
		fprintf(stderr, "rslab_sys: unknown ioctl case %s\n", c);
		return 2;
	}
	report(rc);
	/* Nothing may have changed: the object is still there and alone. */
	if (active_objs(fd) != 1 || ioctl(fd, RSLAB_IOC_FREE, &(struct rslab_handle){
					.version = RSLAB_ABI_VERSION, .id = 2 }) ||
	    (made[0] && registered(made)))
		puts("CHANGED");
	return 0;
}

#define CMD(c) printf("%s %#010x\n", #c, (unsigned int)(c))
#define SIZE(s) printf("sizeof(struct %s) %zu\n", #s, sizeof(struct s))

static int abi(void)
{
	CMD(RSLAB_IOC_INFO);
	CMD(RSLAB_IOC_CACHE_CREATE);
	CMD(RSLAB_IOC_CACHE_DESTROY);
	CMD(RSLAB_IOC_ALLOC);
	CMD(RSLAB_IOC_FREE);
	CMD(RSLAB_IOC_WRITE);
	CMD(RSLAB_IOC_READ);
	CMD(RSLAB_IOC_BULK_ALLOC);
	CMD(RSLAB_IOC_BULK_FREE);
	CMD(RSLAB_IOC_POOL_CREATE);
	CMD(RSLAB_IOC_POOL_RESIZE);
	CMD(RSLAB_IOC_POOL_DESTROY);
	CMD(RSLAB_IOC_SHRINK);
	CMD(RSLAB_IOC_CACHE_INFO);
	CMD(RSLAB_IOC_POOL_INFO);
	SIZE(rslab_info);
	SIZE(rslab_handle);
	SIZE(rslab_cache_create);
	SIZE(rslab_alloc);
	SIZE(rslab_io);
	SIZE(rslab_bulk);
	SIZE(rslab_pool_create);
	SIZE(rslab_pool_resize);
	SIZE(rslab_cache_info);
	SIZE(rslab_pool_info);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "load"))
		return load(argv[2], argc - 3, argv + 3);
	if (argc == 3 && !strcmp(argv[1], "unload"))
		return unload(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "write"))
		return write_file(argv[2], argv[3]);
	if (argc == 3 && !strcmp(argv[1], "ioctl"))
		return bad_ioctl(argv[2]);
	if (argc == 2 && !strcmp(argv[1], "abi"))
		return abi();
	fprintf(stderr, "usage: %s load MODULE.ko [PARAM=VALUE]... | unload MODULE | "
		"write FILE TEXT | ioctl CASE | abi\n", argv[0]);
	return 2;
}
