/*
 * /init of the initramfs the harness builds for a distribution kernel package
 * (--kernel-package, harness/kernel_package.py). Such a kernel has its disk driver and
 * root filesystem as modules; this loads them, mounts root= and hands over to init=.
 *
 * The modules are in /modules as NN-name.ko, uncompressed, numbered by the host in
 * dependency order (from the package's modules.dep), so no modprobe is needed here.
 * Built static by the host's gcc: the initramfs holds no libc.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ROOT_WAIT_MS 30000

static void say(const char *fmt, ...)
{
	char buf[512];
	int fd, n;
	va_list ap;

	n = snprintf(buf, sizeof(buf), "nvh-initramfs: ");
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	fd = open("/dev/kmsg", O_WRONLY);
	if (fd >= 0) {
		if (write(fd, buf, n > (int)sizeof(buf) ? (int)sizeof(buf) : n) < 0)
			fputs(buf, stderr);
		close(fd);
	} else {
		fputs(buf, stderr);
	}
}

static void die(const char *what)
{
	say("%s: %s; the kernel panics now (exit of init)\n", what, strerror(errno));
	exit(1);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static void load_modules(void)
{
	struct dirent **names;
	int n = scandir("/modules", &names, NULL, by_name);

	for (int i = 0; i < n; i++) {
		char path[300];
		int fd;

		if (names[i]->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/modules/%s", names[i]->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || syscall(SYS_finit_module, fd, "", 0) != 0) {
			if (errno != EEXIST)
				say("loading %s: %s\n", names[i]->d_name, strerror(errno));
		}
		if (fd >= 0)
			close(fd);
		/* The module's memory is the kernel's now; give the file's back. */
		unlink(path);
	}
}

/* The value of `key=` on the kernel command line, or `fallback`. */
static const char *cmdline_value(const char *cmdline, const char *key, const char *fallback)
{
	static char values[4][256];
	static int next;
	size_t klen = strlen(key);
	const char *p = cmdline;

	while ((p = strstr(p, key)) != NULL) {
		if ((p == cmdline || p[-1] == ' ') && p[klen] == '=') {
			char *out = values[next++ % 4];
			size_t n = strcspn(p + klen + 1, " \n");

			if (n >= sizeof(values[0]))
				n = sizeof(values[0]) - 1;
			memcpy(out, p + klen + 1, n);
			out[n] = '\0';
			return out;
		}
		p += klen;
	}
	return fallback;
}

static int has_word(const char *cmdline, const char *word)
{
	size_t len = strlen(word);

	for (const char *p = cmdline; (p = strstr(p, word)) != NULL; p += len)
		if ((p == cmdline || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\n' || !p[len]))
			return 1;
	return 0;
}

static void wait_for(const char *dev)
{
	struct timespec tick = { 0, 20 * 1000 * 1000 };
	struct stat st;

	for (int waited = 0; stat(dev, &st) != 0; waited += 20) {
		if (waited >= ROOT_WAIT_MS) {
			say("root device %s did not appear in %d s\n", dev, ROOT_WAIT_MS / 1000);
			exit(1);
		}
		nanosleep(&tick, NULL);
	}
}

int main(void)
{
	char cmdline[4096] = "";
	const char *root, *fstype, *init;
	unsigned long flags;
	int fd;

	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	fd = open("/proc/cmdline", O_RDONLY);
	if (fd >= 0) {
		ssize_t n = read(fd, cmdline, sizeof(cmdline) - 1);

		cmdline[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	root = cmdline_value(cmdline, "root", "/dev/vda");
	fstype = cmdline_value(cmdline, "rootfstype", "ext4");
	init = cmdline_value(cmdline, "init", "/sbin/init");
	flags = has_word(cmdline, "ro") ? MS_RDONLY : 0;

	load_modules();
	wait_for(root);
	if (mount(root, "/root", fstype, flags, NULL) != 0)
		die("mounting the root filesystem");
	say("root %s (%s) mounted; exec %s\n", root, fstype, init);

	/* Hand /dev over; the real init mounts its own /proc and /sys. */
	if (mount("/dev", "/root/dev", NULL, MS_MOVE, NULL) != 0)
		umount2("/dev", MNT_DETACH);
	umount2("/proc", MNT_DETACH);
	umount2("/sys", MNT_DETACH);
	if (chdir("/root") != 0 || mount(".", "/", NULL, MS_MOVE, NULL) != 0 ||
	    chroot(".") != 0 || chdir("/") != 0)
		die("switching to the root filesystem");
	execl(init, init, (char *)NULL);
	die(init);
	return 1;
}
