/*
 * nvh-common.h - helpers shared by the guest workloads (nvh-odirect.c, nvh-pin.c,
 * nvh-kvm.c): errno and signal names, the pattern streams, mappings and files, the
 * SIGBUS/SIGSEGV guard, the control signals, the JSON writer, fail() and the report's
 * "error", the --buffer kinds and the usage helpers.
 *
 * Header-only (static inline functions, static variables), so every program stays one gcc
 * call: `gcc ... -o nvh-pin nvh-pin.c`, with this header next to the source.  The image
 * build (harness/image.py) stages the headers a compiled source includes with
 * #include "..." next to it and hashes them into the image's cache key.
 *
 * Define NVH_PROG (the program name that prefixes usage errors) before including it.
 */
#ifndef NVH_COMMON_H
#define NVH_COMMON_H

#ifndef NVH_PROG
#error "define NVH_PROG before including nvh-common.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SZ_2M (2UL << 20)

/* -------------------------------------------------------- errno, signals */

/* A symbolic name, "0" for 0, else "E<num>" (in a static buffer). */
static inline const char *errno_name(int e)
{
	static const struct {
		int e;
		const char *n;
	} t[] = {
		{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { ESRCH, "ESRCH" },
		{ EINTR, "EINTR" }, { EIO, "EIO" }, { ENXIO, "ENXIO" },
		{ E2BIG, "E2BIG" }, { EBADF, "EBADF" }, { EAGAIN, "EAGAIN" },
		{ ENOMEM, "ENOMEM" }, { EACCES, "EACCES" }, { EFAULT, "EFAULT" },
		{ EBUSY, "EBUSY" }, { EEXIST, "EEXIST" }, { ENODEV, "ENODEV" },
		{ EINVAL, "EINVAL" }, { ENFILE, "ENFILE" }, { EMFILE, "EMFILE" },
		{ ENOTTY, "ENOTTY" }, { EFBIG, "EFBIG" }, { ENOSPC, "ENOSPC" },
		{ ESPIPE, "ESPIPE" }, { EROFS, "EROFS" }, { EPIPE, "EPIPE" },
		{ ERANGE, "ERANGE" }, { ENOSYS, "ENOSYS" },
		{ EOVERFLOW, "EOVERFLOW" }, { EOPNOTSUPP, "EOPNOTSUPP" },
		{ EPROTONOSUPPORT, "EPROTONOSUPPORT" },
		{ EADDRNOTAVAIL, "EADDRNOTAVAIL" }, { ENETUNREACH, "ENETUNREACH" },
		{ ETIMEDOUT, "ETIMEDOUT" }, { ECONNREFUSED, "ECONNREFUSED" },
		{ EHOSTUNREACH, "EHOSTUNREACH" }, { ECANCELED, "ECANCELED" },
		{ EHWPOISON, "EHWPOISON" },
	};
	static char other[16];

	if (e == 0)
		return "0";
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i].e == e)
			return t[i].n;
	snprintf(other, sizeof(other), "E%d", e);
	return other;
}

/* The name a report gives a guard or control signal. */
static inline const char *signal_name(int sig)
{
	switch (sig) {
	case SIGBUS: return "SIGBUS";
	case SIGSEGV: return "SIGSEGV";
	case SIGUSR1: return "SIGUSR1";
	case SIGUSR2: return "SIGUSR2";
	case SIGTERM: return "SIGTERM";
	case SIGINT: return "SIGINT";
	}
	return "other";
}

/* ------------------------------------------------------------------ time */

static inline long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);	/* does not touch errno on success */
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* -------------------------------------------------------------- patterns */

/*
 * Independent pseudo-random streams.  Every byte is a function of (seed, stream, absolute
 * position), so a mismatch offset names a position, the bytes of one page never equal
 * those of another page, and data left behind by another stream, step or run with another
 * seed never equals the expected stream.  Byte pos of a stream is byte (pos & 7) of the
 * 64-bit word mix64(key ^ (pos >> 3)), in host byte order.
 */
static inline uint64_t mix64(uint64_t x)	/* splitmix64 finaliser */
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static inline uint64_t stream_key(uint64_t seed, uint64_t stream)
{
	return mix64(seed ^ mix64(stream));
}

/* The stream's 8 bytes at pos & ~7, as one word (as memcpy'd into a buffer). */
static inline uint64_t pattern_word(uint64_t key, uint64_t pos)
{
	return mix64(key ^ (pos >> 3));
}

static inline unsigned char pattern_byte(uint64_t key, uint64_t pos)
{
	uint64_t w = pattern_word(key, pos);
	unsigned char b[8];

	memcpy(b, &w, 8);
	return b[pos & 7];
}

/* dst[0..len) = stream bytes at positions pos..pos+len; any alignment. */
static inline void pattern_range(uint64_t key, unsigned char *dst, uint64_t pos, size_t len)
{
	size_t i = 0;

	for (; i < len && ((pos + i) & 7); i++)
		dst[i] = pattern_byte(key, pos + i);
	for (; i + 8 <= len; i += 8) {
		uint64_t w = pattern_word(key, pos + i);

		memcpy(dst + i, &w, 8);
	}
	for (; i < len; i++)
		dst[i] = pattern_byte(key, pos + i);
}

/* ------------------------------------------------------ mappings, files */

static inline size_t round_up(size_t v, size_t a)
{
	return (v + a - 1) / a * a;
}

/*
 * A mapping of len bytes (of fd from offset 0) at an address aligned to align.  PMD faults
 * need the virtual address and the file offset congruent modulo 2 MiB and the whole 2 MiB
 * inside the VMA (fs/dax.c dax_fault_check_fallback(), drivers/dax/device.c
 * __dev_dax_pmd_fault()), and device-dax refuses a VMA whose start or end is not aligned
 * to the device align (drivers/dax/device.c check_vma()).  mmap(NULL) promises none of
 * that, so reserve len + align of PROT_NONE and MAP_FIXED the real mapping at the aligned
 * address inside it.
 */
static inline void *map_aligned(int fd, size_t len, int prot, int flags, size_t align)
{
	size_t span = len + align, head, tail;
	unsigned char *resv, *p;
	uintptr_t a;

	resv = mmap(NULL, span, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (resv == MAP_FAILED)
		return MAP_FAILED;
	a = ((uintptr_t)resv + align - 1) & ~(uintptr_t)(align - 1);
	p = mmap((void *)a, len, prot, flags | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED) {
		int err = errno;

		munmap(resv, span);
		errno = err;
		return MAP_FAILED;
	}
	head = a - (uintptr_t)resv;
	tail = span - head - len;
	if (head)
		munmap(resv, head);
	if (tail)
		munmap(p + len, tail);
	return p;
}

/*
 * fallocate() allocates real blocks, so an fsdax fault can map them directly (with a PMD
 * when the extent allows); filesystems without it get a sparse extension instead.
 */
static inline int extend_file(int fd, off_t size)
{
	if (fallocate(fd, 0, 0, size) == 0)
		return 0;
	if (errno != EOPNOTSUPP)
		return -1;
	return ftruncate(fd, size);
}

/* ------------------------------------------------ SIGBUS / SIGSEGV guard */

/*
 * A CPU access to a DAX mapping beyond the file/device end, to a page the filesystem has
 * just truncated away, or to a device that went away raises SIGBUS.  Every userspace
 * access to a mapping goes through run_guarded(), so such a fault becomes a reported
 * result instead of killing the program without JSON.  The last fault's signal, si_code
 * and address are kept for the report; sigbus_count counts every SIGBUS (any thread).
 */
static __thread sigjmp_buf *guard_env;
static volatile sig_atomic_t fault_signo, fault_code;
static void *volatile fault_addr;
static unsigned long sigbus_count;

static inline void on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	fault_signo = sig;
	fault_code = si->si_code;
	fault_addr = si->si_addr;
	if (sig == SIGBUS)
		__atomic_add_fetch(&sigbus_count, 1, __ATOMIC_RELAXED);
	if (guard_env)
		siglongjmp(*guard_env, 1);
	/* Unguarded: returning re-executes the access and dies as usual. */
	signal(sig, SIG_DFL);
}

/* Route sig (SIGBUS, SIGSEGV) to the guard. */
static inline int guard_signal(int sig)
{
	struct sigaction sa = { .sa_sigaction = on_fault, .sa_flags = SA_SIGINFO };

	sigemptyset(&sa.sa_mask);
	return sigaction(sig, &sa, NULL);
}

/* fn(arg) under the guard: false when it took a guarded signal (fault_* say which). */
static inline bool run_guarded(void (*fn)(void *), void *arg)
{
	sigjmp_buf env;

	if (sigsetjmp(env, 1)) {
		guard_env = NULL;
		return false;
	}
	fault_signo = 0;
	guard_env = &env;
	fn(arg);
	guard_env = NULL;
	return true;
}

/* ------------------------------------------------------- control signals */

/*
 * nvh-pin --hold and nvh-kvm hold/loop: SIGUSR1 asks for one more step, SIGUSR2, SIGTERM
 * and SIGINT end the wait.  Blocked from the start, so a signal sent early waits for the
 * program to take it (sigsuspend(), KVM's signal mask); the handler has no SA_RESTART, so
 * a blocking call it interrupts returns EINTR, and it runs with all four blocked.
 */
static const int control_signals[] = { SIGUSR1, SIGUSR2, SIGTERM, SIGINT };
#define N_CONTROL (sizeof(control_signals) / sizeof(control_signals[0]))

/* Block the control signals (*old: the mask before) and route them to handler. */
static inline int block_control_signals(void (*handler)(int), sigset_t *old)
{
	struct sigaction sa = { .sa_handler = handler };
	sigset_t set;

	sigemptyset(&sa.sa_mask);
	sigemptyset(&set);
	for (size_t i = 0; i < N_CONTROL; i++) {
		sigaddset(&set, control_signals[i]);
		sigaddset(&sa.sa_mask, control_signals[i]);
	}
	if (sigprocmask(SIG_BLOCK, &set, old))
		return -1;
	for (size_t i = 0; i < N_CONTROL; i++)
		if (sigaction(control_signals[i], &sa, NULL))
			return -1;
	return 0;
}

/* ------------------------------------------------------------------ JSON */

/* A JSON string (or null), on stdout. */
static inline void jstr(const char *s)
{
	if (!s) {
		fputs("null", stdout);
		return;
	}
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

/*
 * The object writer of nvh-pin and nvh-kvm (nvh-odirect lays its one report out by hand):
 * compact JSON, keys in call order.  jfirst[d]: nothing written yet at nesting depth d.
 */
static bool jfirst[16];
static int jdepth;

static inline void jsep(void)
{
	if (!jfirst[jdepth])
		putchar(',');
	jfirst[jdepth] = false;
}

static inline void jbegin(void)
{
	putchar('{');
	jfirst[++jdepth] = true;
}

static inline void jend(void)
{
	putchar('}');
	jdepth--;
}

static inline void jabegin(void)
{
	putchar('[');
	jfirst[++jdepth] = true;
}

static inline void jaend(void)
{
	putchar(']');
	jdepth--;
}

static inline void jkey(const char *k)
{
	jsep();
	jstr(k);
	putchar(':');
}

static inline void kstr(const char *k, const char *v) { jkey(k); jstr(v); }
static inline void kint(const char *k, long long v) { jkey(k); printf("%lld", v); }
static inline void kuint(const char *k, uint64_t v) { jkey(k); printf("%" PRIu64, v); }
static inline void kbool(const char *k, bool v) { jkey(k); fputs(v ? "true" : "false", stdout); }
static inline void knull(const char *k) { jkey(k); fputs("null", stdout); }
static inline void kms(const char *k, long long ns) { jkey(k); printf("%.3f", ns / 1e6); }

/* errno_name(e), null for 0. */
static inline void kerr(const char *k, int e)
{
	if (e)
		kstr(k, errno_name(e));
	else
		knull(k);
}

/* An offset or size, null for a negative one (none, unknown). */
static inline void koff(const char *k, long long v)
{
	if (v >= 0)
		kint(k, v);
	else
		knull(k);
}

/* An address as a "0x..." string, null for none (0). */
static inline void kaddr(const char *k, uintptr_t a)
{
	char buf[32];

	if (!a) {
		knull(k);
		return;
	}
	snprintf(buf, sizeof(buf), "0x%" PRIxPTR, a);
	kstr(k, buf);
}

/* One object a line; flushed, so the caller sees an event as it happens. */
static inline void line_end(void)
{
	putchar('\n');
	fflush(stdout);
}

/* --------------------------------------------------------------- failure */

/*
 * The report's "error": a setup step that failed.  The first failure wins: it is the
 * cause, later ones are consequences.
 */
static char fail_msg[512];

/* Records the failure (if it is the first); -1, for `return fail(...)`. */
static inline int __attribute__((format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	if (!fail_msg[0]) {
		va_start(ap, fmt);
		vsnprintf(fail_msg, sizeof(fail_msg), fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* ---------------------------------------------------------------- usage */

/* One line on stderr, exit 2, no JSON. */
static inline void __attribute__((noreturn, format(printf, 1, 2)))
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(NVH_PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* Decimal with an optional K, M or G suffix (powers of 1024). */
static inline size_t parse_size(const char *opt, const char *s)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		usage_error("--%s: bad size '%s'", opt, s);
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	}
	if (*end || (v << shift) >> shift != v || (v << shift) > SIZE_MAX / 4)
		usage_error("--%s: bad size '%s'", opt, s);
	return (size_t)(v << shift);
}

/* ------------------------------------------------------------- --buffer */

/*
 * One enum for every program, so the names in "buffer_kind" agree; only nvh-pin offers
 * shmem (parse_buffer() refuses it for the others).
 */
enum buf_kind { BUF_ANON, BUF_SHMEM, BUF_FILE, BUF_DEVDAX };
static const char *const kind_name[] = { "anon", "shmem", "file", "devdax" };

/* --buffer anon|shmem|file:PATH|devdax:PATH: the kind; *path is the PATH, else NULL. */
static inline enum buf_kind parse_buffer(const char *s, bool shmem, const char **path)
{
	*path = NULL;
	if (!strcmp(s, "anon"))
		return BUF_ANON;
	if (shmem && !strcmp(s, "shmem"))
		return BUF_SHMEM;
	if (!strncmp(s, "file:", 5) && s[5]) {
		*path = s + 5;
		return BUF_FILE;
	}
	if (!strncmp(s, "devdax:", 7) && s[7]) {
		*path = s + 7;
		return BUF_DEVDAX;
	}
	usage_error("--buffer: expected anon, %sfile:PATH or devdax:PATH, got '%s'",
		    shmem ? "shmem, " : "", s);
}

#endif /* NVH_COMMON_H */
