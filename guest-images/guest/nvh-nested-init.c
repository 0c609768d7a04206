/*
 * nvh-nested-init - PID 1 of the nested guest that QEMU boots inside the test guest with a
 * device-dax device as its RAM (testcases/test_kvm.py, case qemu-boot).
 *
 * Everything this guest runs (the kernel, its page tables, this program) lives in the DAX
 * pages KVM mapped for it, so reaching this program at all is the main observation.  It
 * also fills and checks 32 MiB of its own memory, prints one marker line on the first
 * serial port, and powers the VM off (QEMU runs with -no-reboot and exits).
 *
 * Built static in the image (no libraries in the nested initramfs):
 *   gcc -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -static -o nvh-nested-init nvh-nested-init.c
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/utsname.h>
#include <unistd.h>

#define MEMTEST_BYTES (32UL << 20)

/* Mismatching 64-bit words after writing and reading back a position-dependent pattern. */
static long memtest(void)
{
	uint64_t *p = malloc(MEMTEST_BYTES);
	size_t n = MEMTEST_BYTES / sizeof(*p);
	long bad = 0;

	if (!p)
		return -1;
	for (size_t i = 0; i < n; i++)
		p[i] = (i * 0x9e3779b97f4a7c15ULL) ^ 0x5a5a5a5a5a5a5a5aULL;
	for (size_t i = 0; i < n; i++)
		if (p[i] != ((i * 0x9e3779b97f4a7c15ULL) ^ 0x5a5a5a5a5a5a5a5aULL))
			bad++;
	free(p);
	return bad;
}

int main(void)
{
	struct utsname u;
	char line[256];
	long bad;
	int fd;

	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	fd = open("/dev/ttyS0", O_WRONLY | O_NOCTTY);
	if (fd < 0)
		fd = open("/dev/console", O_WRONLY | O_NOCTTY);
	uname(&u);
	bad = memtest();
	snprintf(line, sizeof(line), "\nnvh-nested: init reached, kernel %s, memtest %s "
		 "(%ld of %lu words differ)\n", u.release, bad == 0 ? "ok" : "FAILED", bad,
		 MEMTEST_BYTES / 8);
	if (fd >= 0 && write(fd, line, strlen(line)) < 0)
		fd = -1;
	sync();
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}
