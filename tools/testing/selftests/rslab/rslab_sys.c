// SPDX-License-Identifier: GPL-2.0
/*
 * rslab_sys - the two system calls the rslab selftests need the exact errno
 * of, printed as its name ("OK" on success):
 *
 *   rslab_sys load MODULE.ko [PARAM=VALUE]...   finit_module(2)
 *   rslab_sys write FILE TEXT                    open(2) + write(2)
 *
 * A C helper rather than a script because it starts in milliseconds under
 * TCG, where an interpreter takes seconds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

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

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "load"))
		return load(argv[2], argc - 3, argv + 3);
	if (argc == 4 && !strcmp(argv[1], "write"))
		return write_file(argv[2], argv[3]);
	fprintf(stderr, "usage: %s load MODULE.ko [PARAM=VALUE]... | write FILE TEXT\n", argv[0]);
	return 2;
}
