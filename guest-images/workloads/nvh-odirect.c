/*
 * nvh-odirect - DAX mappings as the user buffer of O_DIRECT I/O.
 *
 * Maps a buffer (an fsdax file, a device-dax char device, or as controls
 * anonymous memory or a page-cache file), then does O_DIRECT read/write
 * between that buffer and a non-DAX "peer" (a block device such as a virtio
 * disk).  The kernel has to fault in and get_user_pages() the buffer pages;
 * for DAX those are ZONE_DEVICE pages (mm/gup.c, fs/dax.c,
 * drivers/dax/device.c).
 *
 * The program observes and reports exactly one JSON object on stdout; the
 * caller judges it.  Exit status: 0 every step ran ("completed": true,
 * whatever was observed), 1 a step the case needs could not run
 * ("completed": false, "error"), 2 usage error.
 *
 * Build: gcc -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread \
 *            -o nvh-odirect nvh-odirect.c
 * See README.md next to this file for the cases and the JSON fields.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NVH_PROG "nvh-odirect"
#include "nvh-common.h"

#define SECTOR 512UL	/* O_DIRECT needs logical-block alignment of buffer, length and offset */
#define MAX_STEPS 32
#define ERRNO_SLOTS 256

/* ------------------------------------------------------------------ options */

struct ctx;

struct case_def {
	const char *name;
	int (*run)(struct ctx *c);
	bool no_anon;		/* needs a file or device behind the mapping */
	bool file_only;
};

struct opts {
	enum buf_kind kind;
	const char *buffer;	/* as given, for the report */
	const char *path;	/* NULL for anon */
	const char *peer;
	const struct case_def *cs;
	size_t size, offset, peer_offset;
	size_t file_size;	/* 0: derive from offset + size */
	size_t align_va;
	long duration_ms;
	uint64_t seed;
	bool corrupt;		/* NVH_ODIRECT_CORRUPT=1 test hook */
};

/* ------------------------------------------------------------------ report */

struct op_result {
	const char *op;
	const char *data;	/* which pattern the step moved, or NULL */
	long long ret;
	int err;		/* errno when ret < 0, else 0 */
	bool sigbus;		/* a CPU access to a mapping took SIGBUS */
};

struct compare {
	bool valid;
	const char *expected, *actual;
	size_t bytes;
	long long mismatch_offset;
	size_t mismatch_count;
	uint32_t expected_crc, actual_crc;
};

/* Filled by the fork child in a MAP_SHARED page, read by the parent. */
struct child_shared {
	bool ran;
	bool sigbus;
	bool saw_parent_data;
	long long mismatch_offset;
	long long ret;
	int err;
};

struct errhist {
	unsigned long n[ERRNO_SLOTS];
};

struct collision_report {
	bool valid;
	long elapsed_ms;
	struct {
		unsigned long iterations, ok, short_reads, sigbus;
		struct errhist errors;
	} reader;
	struct {
		unsigned long iterations;
		struct errhist punch_hole, truncate, extend;
	} mutator;
};

static struct {
	struct op_result steps[MAX_STEPS];
	int nsteps;
	bool have_transfer;
	struct op_result transfer;
	long long transfer_ns;	/* duration of the key syscall, -1 when not timed */
	struct compare compare, file_compare;
	struct {
		bool valid;
		int status;	/* raw waitpid() status */
		struct child_shared sh;
	} child;
	struct {
		bool valid;
		uint32_t crc_before, crc_after;
	} readonly;
	struct collision_report collision;
	const char *peer_kind;
	uintptr_t map_addr;
	size_t map_len;
	long long file_size;	/* -1: not a file buffer */
} R = { .file_size = -1, .transfer_ns = -1 };

static void record(const char *op, const char *data, long long ret, int err,
		   bool sigbus)
{
	if (R.nsteps < MAX_STEPS)
		R.steps[R.nsteps++] = (struct op_result){ op, data, ret, err, sigbus };
}

/* Record a syscall result; errno is read before anything can clobber it. */
static long long step(const char *op, const char *data, long long ret)
{
	int err = ret < 0 ? errno : 0;

	record(op, data, ret, err, false);
	errno = err;
	return ret;
}

/* A step the case cannot do without: must return >= 0. */
static int need_ok(const char *op, const char *data, long long ret)
{
	if (step(op, data, ret) >= 0)
		return 0;
	return fail("%s: %s", op, strerror(errno));
}

/* A data step the case cannot do without: must move exactly len bytes. */
static int need_len(const char *op, const char *data, long long ret, size_t len)
{
	if (step(op, data, ret) == (long long)len)
		return 0;
	if (ret < 0)
		return fail("%s: %s", op, strerror(errno));
	return fail("%s: short transfer %lld of %zu bytes", op, ret, len);
}

static void set_transfer(const char *op, const char *data, long long ret, int err)
{
	R.have_transfer = true;
	R.transfer = (struct op_result){ op, data, ret, err, false };
	record(op, data, ret, err, false);
}

/*
 * Time only the key O_DIRECT syscall: `make bench` derives MiB/s from it, and an SSH
 * round trip or the pattern generation around it would dwarf the I/O under TCG.
 */
#define TIMED_TRANSFER(op, data, call)						\
	do {									\
		long long t0_ = now_ns();					\
		long long ret_ = (call);					\
		R.transfer_ns = now_ns() - t0_;					\
		transfer(op, data, ret_);					\
	} while (0)

/* The one O_DIRECT syscall of the case that uses the mapped buffer. */
static void transfer(const char *op, const char *data, long long ret)
{
	set_transfer(op, data, ret, ret < 0 ? errno : 0);
}

/* ------------------------------------------------------- patterns and CRC */

/*
 * Independent pseudo-random streams.  Every byte is a function of (seed,
 * stream, absolute position), so a mismatch offset names a position, and
 * data left behind by an earlier step or run never equals the expected
 * stream.  A and the stale-map stream live at mapping/file offsets, B and
 * the stale-peer stream at peer offsets.
 */
enum stream { S_A = 1, S_B, S_STALE_PEER, S_STALE_MAP };
static const char *const stream_name[] = {
	[S_A] = "pattern_a", [S_B] = "pattern_b",
	[S_STALE_PEER] = "stale_peer", [S_STALE_MAP] = "stale_map",
};

/* pos and len are multiples of SECTOR, hence of 8. */
static void pattern_fill(unsigned char *dst, size_t len, uint64_t seed,
			 enum stream s, uint64_t pos)
{
	pattern_range(stream_key(seed, s), dst, pos, len);
}

static uint32_t crc_table[256];

static void crc32_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xedb88320U ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc32(const unsigned char *p, size_t n)
{
	uint32_t c = ~0U;

	while (n--)
		c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return ~c;
}

/* ------------------------------------------------------- SIGBUS guarding */

/*
 * Every userspace access to a mapping goes through run_guarded() (nvh-common.h), so a
 * SIGBUS turns into a reported step instead of killing the program without JSON.
 */
struct copy_args {
	void *dst;
	const void *src;
	size_t n;
};

static void do_copy(void *arg)
{
	struct copy_args *a = arg;

	memcpy(a->dst, a->src, a->n);
}

static bool guarded_copy(void *dst, const void *src, size_t n)
{
	struct copy_args a = { dst, src, n };

	return run_guarded(do_copy, &a);
}

/* CPU load/store between a mapping and a heap buffer, as a step. */
static int cpu_copy(const char *op, const char *data, void *dst,
		    const void *src, size_t n)
{
	bool ok = guarded_copy(dst, src, n);

	record(op, data, ok ? (long long)n : -1, 0, !ok);
	return ok ? 0 : fail("%s: SIGBUS", op);
}

/* ------------------------------------------------------------- comparing */

static long long first_mismatch(const unsigned char *a, const unsigned char *b,
				size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return (long long)i;
	return -1;
}

static bool debug_corrupt;

static void compare(struct compare *r, const char *expected_what,
		    const unsigned char *exp, const char *actual_what,
		    unsigned char *act, size_t n)
{
	long long first;

	/* Test hook: prove a mismatch reaches the report. */
	if (debug_corrupt)
		act[n / 2] ^= 0xff;
	first = first_mismatch(exp, act, n);
	*r = (struct compare){
		.valid = true, .expected = expected_what, .actual = actual_what,
		.bytes = n, .mismatch_offset = first,
		.expected_crc = crc32(exp, n), .actual_crc = crc32(act, n),
	};
	for (size_t i = first < 0 ? n : (size_t)first; i < n; i++)
		r->mismatch_count += exp[i] != act[i];
}

/* ------------------------------------------------------------- the setup */

struct ctx {
	const struct opts *o;
	int peer_fd;
	int buf_fd;		/* -1 for anon */
	off_t file_size;	/* file buffers: size after setup */
	size_t map_len;
	unsigned char *map;	/* I/O buffer is map + o->offset */
	unsigned char *pat;	/* expected pattern */
	unsigned char *bounce;	/* O_DIRECT bounce buffer for the peer */
	unsigned char *snap;	/* CPU copy of mapping or file contents */
};

static void pattern(const struct ctx *c, enum stream s, unsigned char *dst)
{
	bool map_side = s == S_A || s == S_STALE_MAP;

	pattern_fill(dst, c->o->size, c->o->seed, s,
		     map_side ? c->o->offset : c->o->peer_offset);
}

static unsigned char *map_region(struct ctx *c, int fd, int prot, const char *op)
{
	int flags = fd < 0 ? MAP_PRIVATE | MAP_ANONYMOUS : MAP_SHARED;
	void *p = map_aligned(fd, c->map_len, prot, flags, c->o->align_va);

	if (need_ok(op, NULL, p == MAP_FAILED ? -1 : 0))
		return NULL;
	return p;
}

/*
 * The case's mapping, also announced in the kernel log (when /dev/kmsg is writable):
 * faults logged after this line at this address are the case's own, not those of
 * a temporary seeding mapping that the kernel may have placed at the same address
 * (harness/devdax_faults.py counts dev_dax_huge_fault()'s lines after it).
 */
static void kmsg_note(const char *what)
{
	int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	char line[96];
	int n;

	if (fd < 0)
		return;
	/* One write() per record; not dprintf(): glibc's gives up on /dev/kmsg, whose
	 * llseek(SEEK_CUR) fails with EINVAL (seen in the guest: no line at all). */
	n = snprintf(line, sizeof(line), "nvh-odirect: case mapping 0x%" PRIxPTR " %s\n",
		     R.map_addr, what);
	if (n > 0 && (size_t)n < sizeof(line) && write(fd, line, (size_t)n) < 0)
		fprintf(stderr, "nvh-odirect: /dev/kmsg: %s\n", strerror(errno));
	close(fd);
}

static void report_mapping(const struct ctx *c, const unsigned char *p)
{
	char len[32];

	R.map_addr = (uintptr_t)p;
	R.map_len = c->map_len;
	snprintf(len, sizeof(len), "len %zu", R.map_len);
	kmsg_note(len);
}

/* The case's mapping is gone before the run ends (read-readonly): later faults at the
 * same address belong to a verification mapping, not to the case. */
static void report_unmapped(void)
{
	kmsg_note("unmapped");
}

/* The case's own mapping: created after any setup I/O, so it is untouched. */
static int map_main(struct ctx *c, int prot)
{
	c->map = map_region(c, c->buf_fd, prot, "mmap_buffer");
	if (!c->map)
		return -1;
	report_mapping(c, c->map);
	return 0;
}

static int setup_file(struct ctx *c)
{
	const struct opts *o = c->o;
	off_t want = o->file_size ? (off_t)o->file_size
				  : (off_t)round_up(o->offset + o->size, SZ_2M);
	struct stat st;

	c->buf_fd = open(o->path, O_RDWR | O_CREAT, 0644);
	if (need_ok("open_buffer", NULL, c->buf_fd) ||
	    need_ok("fstat_buffer", NULL, fstat(c->buf_fd, &st)))
		return -1;
	if (!S_ISREG(st.st_mode))
		return fail("%s is not a regular file", o->path);
	if (st.st_size < want &&
	    need_ok("extend_buffer_file", NULL, extend_file(c->buf_fd, want)))
		return -1;
	c->file_size = st.st_size > want ? st.st_size : want;
	R.file_size = c->file_size;
	return 0;
}

static int open_peer(struct ctx *c)
{
	struct stat st;

	c->peer_fd = open(c->o->peer, O_RDWR | O_DIRECT);
	if (need_ok("open_peer", NULL, c->peer_fd) ||
	    need_ok("fstat_peer", NULL, fstat(c->peer_fd, &st)))
		return -1;
	R.peer_kind = S_ISBLK(st.st_mode) ? "block" :
		      S_ISREG(st.st_mode) ? "file" : "other";
	return 0;
}

static int setup(struct ctx *c)
{
	const struct opts *o = c->o;
	size_t unit = o->align_va > SZ_2M ? o->align_va : SZ_2M;
	unsigned char **bufs[] = { &c->pat, &c->bounce, &c->snap };

	c->buf_fd = -1;
	c->map_len = round_up(o->offset + o->size, unit);
	for (size_t i = 0; i < 3; i++) {
		int err = posix_memalign((void **)bufs[i], 4096, o->size);

		if (err)
			return fail("posix_memalign(%zu): %s", o->size, strerror(err));
	}
	if (open_peer(c))
		return -1;
	switch (o->kind) {
	case BUF_FILE:
		return setup_file(c);
	case BUF_DEVDAX:
		c->buf_fd = open(o->path, O_RDWR);
		return need_ok("open_buffer", NULL, c->buf_fd);
	case BUF_ANON:
	case BUF_SHMEM:		/* refused by parse_buffer() */
		break;
	}
	return 0;
}

/* ------------------------------------------------------- building blocks */

static int peer_fill(struct ctx *c, enum stream s)
{
	const struct opts *o = c->o;

	pattern(c, s, c->bounce);
	return need_len("odirect_write_peer_from_bounce", stream_name[s],
			pwrite(c->peer_fd, c->bounce, o->size, o->peer_offset),
			o->size);
}

static int peer_read(struct ctx *c)
{
	const struct opts *o = c->o;

	return need_len("odirect_read_peer_into_bounce", NULL,
			pread(c->peer_fd, c->bounce, o->size, o->peer_offset),
			o->size);
}

/*
 * Put stream s into the file/device range behind the buffer without
 * touching the case's mapping: through the fd for files; device-dax has no
 * read/write file operations (drivers/dax/device.c), so through a separate
 * mapping that is gone before the case maps the device itself.
 */
static int range_fill(struct ctx *c, enum stream s)
{
	const struct opts *o = c->o;
	unsigned char *m;
	int rc;

	pattern(c, s, c->pat);
	if (o->kind == BUF_FILE)
		return need_len("pwrite_file", stream_name[s],
				pwrite(c->buf_fd, c->pat, o->size, o->offset),
				o->size) ||
		       need_ok("fsync_file", NULL, fsync(c->buf_fd));
	m = map_region(c, c->buf_fd, PROT_READ | PROT_WRITE, "mmap_devdax_tmp_rw");
	if (!m)
		return -1;
	rc = cpu_copy("cpu_store_devdax_tmp", stream_name[s], m + o->offset,
		      c->pat, o->size);
	munmap(m, c->map_len);
	return rc;
}

/* Read the file/device range into dst, the same two ways as range_fill(). */
static int range_read(struct ctx *c, unsigned char *dst)
{
	const struct opts *o = c->o;
	unsigned char *m;
	int rc;

	if (o->kind == BUF_FILE)
		return need_len("pread_file", NULL,
				pread(c->buf_fd, dst, o->size, o->offset), o->size);
	m = map_region(c, c->buf_fd, PROT_READ, "mmap_devdax_tmp_ro");
	if (!m)
		return -1;
	rc = cpu_copy("cpu_read_devdax_tmp", NULL, dst, m + o->offset, o->size);
	munmap(m, c->map_len);
	return rc;
}

static int map_store(struct ctx *c, enum stream s)
{
	pattern(c, s, c->pat);
	return cpu_copy("cpu_store_map", stream_name[s], c->map + c->o->offset,
			c->pat, c->o->size);
}

static int map_snapshot(struct ctx *c)
{
	return cpu_copy("cpu_read_map", NULL, c->snap, c->map + c->o->offset,
			c->o->size);
}

static int check_peer_holds_a(struct ctx *c)
{
	if (peer_read(c))
		return -1;
	pattern(c, S_A, c->pat);
	compare(&R.compare, "pattern_a", c->pat, "peer", c->bounce, c->o->size);
	return 0;
}

/* O_DIRECT read of B from the peer into the mapping, then check the mapping. */
static int read_peer_into_map(struct ctx *c, const char *op)
{
	const struct opts *o = c->o;

	TIMED_TRANSFER(op, "pattern_b",
		       pread(c->peer_fd, c->map + o->offset, o->size, o->peer_offset));
	if (map_snapshot(c))
		return -1;
	pattern(c, S_B, c->pat);
	compare(&R.compare, "pattern_b", c->pat, "map", c->snap, o->size);
	return 0;
}

/* ----------------------------------------------------------------- cases */

/*
 * What the range holds before the case maps it.  Every comparison expects a pattern
 * stream (page-distinct: every byte a function of seed, stream and position) or, for
 * never-touched anonymous memory, zeroes -- never "whatever the device held", which after
 * a namespace reconfiguration is the same bytes (zeroes) on every page, so that a kernel
 * handing the I/O a neighbouring page would pass.  The seed goes in through the fd or a
 * temporary mapping (range_fill()), never through the case's own mapping.
 *
 * Device-dax keeps its contents across reconfigurations, so a range the case fills through
 * its own mapping (write-prefaulted, fork) may still hold that very data from an earlier
 * run (write-untouched and read-readonly seed pattern A there): it is seeded with the
 * stale stream first, so that A can only come from this run's CPU stores.  The harness
 * gives file buffers a new fallocated file, which reads as zeroes; write-prefaulted and
 * fork leave it so (never written: the fsdax PMD-fault check of write-prefaulted-64M
 * wants unwritten extents faulted in by the CPU stores alone).
 */
static int seed_devdax_stale(struct ctx *c)
{
	return c->o->kind == BUF_DEVDAX ? range_fill(c, S_STALE_MAP) : 0;
}

/*
 * The buffer is never touched by the CPU, so the O_DIRECT write finds no
 * page table entries and get_user_pages (mm/gup.c, without FOLL_WRITE)
 * has to read-fault it in -- for DAX through fs/dax.c dax_iomap_fault() or
 * drivers/dax/device.c dev_dax_huge_fault().  The peer is first filled
 * with a stale stream so an I/O that moves nothing cannot match.
 *
 * File and device ranges are seeded with pattern A (fd / temporary mapping, gone before
 * map_main()), so the peer must hold A: a transfer that read any page but the right one
 * cannot match.  Anonymous memory has no view but the mapping itself, so it cannot be
 * seeded without touching the mapping (which is the point of the case); never-touched
 * anonymous memory reads as the shared zero page, and the peer must hold zeroes.  That
 * keeps anon the control for the zero-page path; it cannot tell one page from another.
 */
static int case_write_untouched(struct ctx *c)
{
	const struct opts *o = c->o;
	bool anon = o->kind == BUF_ANON;

	if ((!anon && range_fill(c, S_A)) || peer_fill(c, S_STALE_PEER) ||
	    map_main(c, PROT_READ | PROT_WRITE))
		return -1;
	TIMED_TRANSFER("odirect_write_peer_from_map", anon ? "zeroes" : "pattern_a",
		       pwrite(c->peer_fd, c->map + o->offset, o->size, o->peer_offset));
	if (!anon)
		return check_peer_holds_a(c);
	if (peer_read(c))
		return -1;
	memset(c->pat, 0, o->size);
	compare(&R.compare, "zeroes", c->pat, "peer", c->bounce, o->size);
	return 0;
}

/*
 * O_DIRECT read into a never-touched mapping: get_user_pages with
 * FOLL_WRITE must write-fault it in.  File/device content is first set to a
 * stale stream so old data cannot pass; for files the fd view must agree.
 */
static int case_read_untouched(struct ctx *c)
{
	const struct opts *o = c->o;

	if ((o->kind != BUF_ANON && range_fill(c, S_STALE_MAP)) ||
	    peer_fill(c, S_B) || map_main(c, PROT_READ | PROT_WRITE) ||
	    read_peer_into_map(c, "odirect_read_peer_into_map"))
		return -1;
	if (o->kind != BUF_FILE)
		return 0;
	if (need_ok("msync_map", NULL, msync(c->map, c->map_len, MS_SYNC)) ||
	    range_read(c, c->snap))
		return -1;
	pattern(c, S_B, c->pat);
	compare(&R.file_compare, "pattern_b", c->pat, "file_via_fd", c->snap,
		o->size);
	return 0;
}

/*
 * The page tables already map the buffer writable (PTE or PMD) before GUP: the CPU stores
 * pattern A (over the stale stream on devdax, see seed_devdax_stale()).
 */
static int case_write_prefaulted(struct ctx *c)
{
	const struct opts *o = c->o;

	if (seed_devdax_stale(c) || peer_fill(c, S_STALE_PEER) ||
	    map_main(c, PROT_READ | PROT_WRITE) || map_store(c, S_A))
		return -1;
	TIMED_TRANSFER("odirect_write_peer_from_map", "pattern_a",
		       pwrite(c->peer_fd, c->map + o->offset, o->size, o->peer_offset));
	return check_peer_holds_a(c);
}

static void __attribute__((noreturn)) fork_child(struct ctx *c,
						  struct child_shared *sh)
{
	const struct opts *o = c->o;

	sh->sigbus = !guarded_copy(c->snap, c->map + o->offset, o->size);
	sh->mismatch_offset = sh->sigbus ? -1 : first_mismatch(c->pat, c->snap, o->size);
	sh->saw_parent_data = !sh->sigbus && sh->mismatch_offset < 0;
	sh->ret = pwrite(c->peer_fd, c->map + o->offset, o->size, o->peer_offset);
	sh->err = sh->ret < 0 ? errno : 0;
	sh->ran = true;
	_exit(sh->sigbus ? 1 : 0);
}

/*
 * The child inherits the mapping.  For MAP_SHARED file/device VMAs without
 * anon pages fork does not copy the page tables (mm/memory.c
 * vma_needs_copy()), so the child faults the DAX pages afresh; anonymous
 * MAP_PRIVATE memory is copy-on-write shared.  The child compares what it
 * reads with pattern A (the parent's stores of this run: a devdax range was
 * seeded with the stale stream first) and then does the O_DIRECT write from
 * the mapping.
 */
static int case_fork(struct ctx *c)
{
	struct child_shared *sh;
	int status;
	pid_t pid;

	if (seed_devdax_stale(c) || peer_fill(c, S_STALE_PEER) ||
	    map_main(c, PROT_READ | PROT_WRITE) || map_store(c, S_A))
		return -1;
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (need_ok("mmap_child_result", NULL, sh == MAP_FAILED ? -1 : 0))
		return -1;
	pid = fork();
	if (need_ok("fork", NULL, pid))
		return -1;
	if (pid == 0)
		fork_child(c, sh);
	if (need_ok("waitpid", NULL, waitpid(pid, &status, 0)))
		return -1;
	R.child.valid = true;
	R.child.status = status;
	R.child.sh = *sh;
	munmap(sh, sizeof(*sh));
	if (!R.child.sh.ran)
		return fail("fork child did not finish (wait status 0x%x)", status);
	set_transfer("child_odirect_write_peer_from_map", "pattern_a",
		     R.child.sh.ret, R.child.sh.err);
	return check_peer_holds_a(c);
}

/*
 * generic/462: an O_DIRECT read must not write into a PROT_READ mapping.
 * GUP with FOLL_WRITE on a VMA without VM_WRITE fails with EFAULT
 * (mm/gup.c check_vma_flags()), and GUP-fast must refuse present but
 * read-only PTEs/PMDs (commit ef947b2 "x86, mm: fix gup_pte_range() vs DAX
 * mappings").  The buffer is read-faulted first so such entries exist.
 */
static int readonly_transfer(struct ctx *c, int ro_fd)
{
	const struct opts *o = c->o;
	unsigned char *ro = map_region(c, ro_fd, PROT_READ, "mmap_buffer_readonly");
	int rc;

	if (!ro)
		return -1;
	report_mapping(c, ro);
	rc = cpu_copy("cpu_read_prefault_map", NULL, c->bounce, ro + o->offset,
		      o->size);
	if (!rc)
		transfer("odirect_read_peer_into_readonly_map", "pattern_b",
			 pread(c->peer_fd, ro + o->offset, o->size, o->peer_offset));
	munmap(ro, c->map_len);
	report_unmapped();
	return rc;
}

static int case_read_readonly(struct ctx *c)
{
	const struct opts *o = c->o;
	int ro_fd, rc;

	if (range_fill(c, S_A) || range_read(c, c->snap))
		return -1;
	R.readonly.crc_before = crc32(c->snap, o->size);
	if (peer_fill(c, S_B))
		return -1;
	/* Read-only open as in generic/462: the VMA cannot even become writable. */
	ro_fd = open(o->path, O_RDONLY);
	if (need_ok("open_buffer_readonly", NULL, ro_fd))
		return -1;
	rc = readonly_transfer(c, ro_fd);
	close(ro_fd);
	if (rc || range_read(c, c->snap))
		return -1;
	R.readonly.crc_after = crc32(c->snap, o->size);
	R.readonly.valid = true;
	pattern(c, S_A, c->pat);
	compare(&R.compare, "pattern_a", c->pat, "range_after_io", c->snap, o->size);
	return 0;
}

struct collision_run {
	const struct ctx *c;
	int stop;
	struct collision_report *rep;
};

static bool stopped(struct collision_run *run)
{
	return __atomic_load_n(&run->stop, __ATOMIC_RELAXED);
}

static void errhist_add(struct errhist *h, int e)
{
	h->n[e > 0 && e < ERRNO_SLOTS ? e : 0]++;
}

static void reader_once(void *arg)
{
	struct collision_run *run = arg;
	const struct opts *o = run->c->o;
	ssize_t r = pread(run->c->peer_fd, run->c->map + o->offset, o->size,
			  o->peer_offset);

	if (r == (ssize_t)o->size)
		run->rep->reader.ok++;
	else if (r >= 0)
		run->rep->reader.short_reads++;
	else
		errhist_add(&run->rep->reader.errors, errno);
}

/*
 * Only the kernel touches the buffer here, so a SIGBUS would be a kernel
 * bug; it is caught and counted so the run still reports.
 */
static void *reader_thread(void *arg)
{
	struct collision_run *run = arg;

	while (!stopped(run)) {
		run->rep->reader.iterations++;
		if (!run_guarded(reader_once, run))
			run->rep->reader.sigbus++;
	}
	return NULL;
}

/*
 * Changes the block mapping under the in-flight direct I/O.  For fsdax,
 * punch-hole and truncate must wait for the pages the I/O holds
 * (fs/dax.c dax_layout_busy_page_range(), ext4_break_layouts() in
 * fs/ext4/inode.c, xfs_break_layouts() in fs/xfs/).
 */
static void *mutator_thread(void *arg)
{
	struct collision_run *run = arg;
	const struct ctx *c = run->c;

	while (!stopped(run)) {
		run->rep->mutator.iterations++;
		if (fallocate(c->buf_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      c->o->offset, c->o->size) < 0)
			errhist_add(&run->rep->mutator.punch_hole, errno);
		if (ftruncate(c->buf_fd, 0) < 0)
			errhist_add(&run->rep->mutator.truncate, errno);
		if (extend_file(c->buf_fd, c->file_size) < 0)
			errhist_add(&run->rep->mutator.extend, errno);
	}
	return NULL;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int race_threads(struct collision_run *run, long duration_ms)
{
	pthread_t rd, mu;
	long start = now_ms();
	int err = pthread_create(&rd, NULL, reader_thread, run);

	if (err)
		return fail("pthread_create: %s", strerror(err));
	err = pthread_create(&mu, NULL, mutator_thread, run);
	if (!err)
		sleep_ms(duration_ms);
	__atomic_store_n(&run->stop, 1, __ATOMIC_RELAXED);
	pthread_join(rd, NULL);
	if (err)
		return fail("pthread_create: %s", strerror(err));
	pthread_join(mu, NULL);
	run->rep->elapsed_ms = now_ms() - start;
	run->rep->valid = true;
	return 0;
}

/*
 * generic/503: O_DIRECT reads into the mapping race with punch-hole and
 * truncate of the file behind it.  Failed reads are expected; the check
 * is that the kernel survives and that a clean read afterwards lands.
 */
static int case_collision(struct ctx *c)
{
	struct collision_run run = { .c = c, .rep = &R.collision };

	if (peer_fill(c, S_B) || map_main(c, PROT_READ | PROT_WRITE) ||
	    race_threads(&run, c->o->duration_ms))
		return -1;
	/* Stale data first: the racing reads may already have left B there. */
	if (need_ok("restore_file_size", NULL, extend_file(c->buf_fd, c->file_size)) ||
	    range_fill(c, S_STALE_MAP))
		return -1;
	return read_peer_into_map(c, "odirect_read_peer_into_map_final");
}

static const struct case_def cases[] = {
	{ "write-untouched", case_write_untouched, false, false },
	{ "read-untouched", case_read_untouched, false, false },
	{ "write-prefaulted", case_write_prefaulted, false, false },
	{ "fork", case_fork, false, false },
	{ "read-readonly", case_read_readonly, true, false },
	{ "collision", case_collision, true, true },
};

/* ---------------------------------------------------------------- output */

static void jbool(bool b)
{
	fputs(b ? "true" : "false", stdout);
}

static void jcrc(uint32_t crc)
{
	printf("\"0x%08" PRIx32 "\"", crc);
}

static void j_op(const struct op_result *r)
{
	fputs("{\"op\": ", stdout);
	jstr(r->op);
	fputs(", \"data\": ", stdout);
	jstr(r->data);
	printf(", \"ret\": %lld, \"errno\": %d, \"errno_name\": ", r->ret, r->err);
	jstr(r->sigbus ? "SIGBUS" : errno_name(r->err));
	putchar('}');
}

static void j_compare(const struct compare *c)
{
	if (!c->valid) {
		fputs("null", stdout);
		return;
	}
	fputs("{\"expected\": ", stdout);
	jstr(c->expected);
	fputs(", \"actual\": ", stdout);
	jstr(c->actual);
	printf(", \"bytes\": %zu, \"mismatch_offset\": %lld, \"mismatch_count\": %zu"
	       ", \"expected_crc32\": ", c->bytes, c->mismatch_offset,
	       c->mismatch_count);
	jcrc(c->expected_crc);
	fputs(", \"actual_crc32\": ", stdout);
	jcrc(c->actual_crc);
	putchar('}');
}

static void j_hist(const struct errhist *h)
{
	const char *sep = "";

	putchar('{');
	for (int e = 0; e < ERRNO_SLOTS; e++) {
		if (!h->n[e])
			continue;
		printf("%s", sep);
		jstr(e ? errno_name(e) : "other");
		printf(": %lu", h->n[e]);
		sep = ", ";
	}
	putchar('}');
}

static void j_child(void)
{
	const struct child_shared *sh = &R.child.sh;
	int st = R.child.status;

	if (!R.child.valid) {
		fputs("null", stdout);
		return;
	}
	fputs("{\"exit_status\": ", stdout);
	if (WIFEXITED(st))
		printf("%d, \"signal\": null", WEXITSTATUS(st));
	else
		printf("null, \"signal\": %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	fputs(", \"finished\": ", stdout);
	jbool(sh->ran);
	fputs(", \"sigbus\": ", stdout);
	jbool(sh->sigbus);
	fputs(", \"saw_parent_data\": ", stdout);
	jbool(sh->saw_parent_data);
	printf(", \"mismatch_offset\": %lld, \"ret\": %lld, \"errno\": %d, \"errno_name\": ",
	       sh->mismatch_offset, sh->ret, sh->err);
	jstr(errno_name(sh->err));
	putchar('}');
}

static void j_readonly(void)
{
	const struct op_result *io = &R.transfer;

	if (!R.readonly.valid) {
		fputs("null", stdout);
		return;
	}
	printf("{\"ret\": %lld, \"errno\": %d, \"errno_name\": ", io->ret, io->err);
	jstr(errno_name(io->err));
	fputs(", \"prefaulted_read\": true, \"crc_before\": ", stdout);
	jcrc(R.readonly.crc_before);
	fputs(", \"crc_after\": ", stdout);
	jcrc(R.readonly.crc_after);
	fputs(", \"content_changed\": ", stdout);
	jbool(R.readonly.crc_before != R.readonly.crc_after);
	putchar('}');
}

static void j_collision(const struct opts *o)
{
	const struct collision_report *k = &R.collision;

	if (!k->valid) {
		fputs("null", stdout);
		return;
	}
	printf("{\"duration_ms\": %ld, \"elapsed_ms\": %ld,\n"
	       "    \"reader\": {\"iterations\": %lu, \"ok\": %lu, \"short\": %lu"
	       ", \"sigbus\": %lu, \"errors\": ",
	       o->duration_ms, k->elapsed_ms, k->reader.iterations, k->reader.ok,
	       k->reader.short_reads, k->reader.sigbus);
	j_hist(&k->reader.errors);
	printf("},\n    \"mutator\": {\"iterations\": %lu, \"punch_hole_errors\": ",
	       k->mutator.iterations);
	j_hist(&k->mutator.punch_hole);
	fputs(", \"truncate_errors\": ", stdout);
	j_hist(&k->mutator.truncate);
	fputs(", \"extend_errors\": ", stdout);
	j_hist(&k->mutator.extend);
	fputs("}}", stdout);
}

static void print_report(const struct opts *o, bool completed)
{
	printf("{\n  \"tool\": \"nvh-odirect\",\n  \"case\": ");
	jstr(o->cs->name);
	fputs(",\n  \"buffer\": ", stdout);
	jstr(o->buffer);
	fputs(",\n  \"buffer_kind\": ", stdout);
	jstr(kind_name[o->kind]);
	fputs(",\n  \"peer\": ", stdout);
	jstr(o->peer);
	fputs(",\n  \"peer_kind\": ", stdout);
	jstr(R.peer_kind);
	printf(",\n  \"size\": %zu,\n  \"offset\": %zu,\n  \"peer_offset\": %zu"
	       ",\n  \"seed\": %" PRIu64 ",\n  \"align_va\": %zu,\n  \"file_size\": ",
	       o->size, o->offset, o->peer_offset, o->seed, o->align_va);
	if (R.file_size < 0)
		fputs("null", stdout);
	else
		printf("%lld", R.file_size);
	if (R.map_addr)
		printf(",\n  \"map_addr\": \"0x%" PRIxPTR "\",\n  \"map_len\": %zu"
		       ",\n  \"map_addr_aligned_2m\": %s", R.map_addr, R.map_len,
		       R.map_addr % SZ_2M ? "false" : "true");
	else
		fputs(",\n  \"map_addr\": null,\n  \"map_len\": null"
		      ",\n  \"map_addr_aligned_2m\": null", stdout);
	fputs(",\n  \"debug_corrupt\": ", stdout);
	jbool(o->corrupt);
	fputs(",\n  \"completed\": ", stdout);
	jbool(completed);
	fputs(",\n  \"error\": ", stdout);
	jstr(fail_msg[0] ? fail_msg : NULL);
	printf(",\n  \"sigbus_count\": %lu,\n  \"steps\": [",
	       __atomic_load_n(&sigbus_count, __ATOMIC_RELAXED));
	for (int i = 0; i < R.nsteps; i++) {
		fputs(i ? ",\n    " : "\n    ", stdout);
		j_op(&R.steps[i]);
	}
	printf("\n  ],\n  \"transfer_ns\": ");
	if (R.transfer_ns < 0)
		fputs("null", stdout);
	else
		printf("%lld", R.transfer_ns);
	fputs(",\n  \"transfer\": ", stdout);
	if (R.have_transfer)
		j_op(&R.transfer);
	else
		fputs("null", stdout);
	fputs(",\n  \"compare\": ", stdout);
	j_compare(&R.compare);
	fputs(",\n  \"file_compare\": ", stdout);
	j_compare(&R.file_compare);
	fputs(",\n  \"child\": ", stdout);
	j_child();
	fputs(",\n  \"readonly\": ", stdout);
	j_readonly();
	fputs(",\n  \"collision\": ", stdout);
	j_collision(o);
	fputs("\n}\n", stdout);
	fflush(stdout);
}

/* --------------------------------------------------------------- parsing */

static const char usage_text[] =
	"usage: nvh-odirect --buffer anon|file:PATH|devdax:PATH --peer PATH "
	"--case write-untouched|read-untouched|write-prefaulted|fork|"
	"read-readonly|collision [--size B] [--offset B] [--peer-offset B] "
	"[--file-size B] [--duration-ms N] [--seed N] [--align-va B]";

static long long parse_num(const char *opt, const char *s, long long max)
{
	long long v;
	char *end;

	errno = 0;
	v = strtoll(s, &end, 0);
	if (errno || end == s || *end || v < 0 || v > max)
		usage_error("--%s: bad number '%s'", opt, s);
	return v;
}

static const struct case_def *parse_case(const char *s)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!strcmp(cases[i].name, s))
			return &cases[i];
	usage_error("--case: unknown case '%s'", s);
}

static void check_opts(const struct opts *o)
{
	long page = sysconf(_SC_PAGESIZE);

	if (!o->buffer || !o->peer || !o->cs)
		usage_error("--buffer, --peer and --case are required; %s", usage_text);
	if (!o->size || o->size % SECTOR || o->offset % SECTOR ||
	    o->peer_offset % SECTOR)
		usage_error("--size (non-zero), --offset and --peer-offset must be "
			    "multiples of %lu for O_DIRECT", SECTOR);
	if (o->align_va < (size_t)page || (o->align_va & (o->align_va - 1)))
		usage_error("--align-va must be a power of two >= the page size");
	if (o->kind == BUF_FILE && o->file_size &&
	    o->file_size < o->offset + o->size)
		usage_error("--file-size %zu is smaller than offset + size", o->file_size);
	if (o->cs->no_anon && o->kind == BUF_ANON)
		usage_error("case %s needs a file: or devdax: buffer", o->cs->name);
	if (o->cs->file_only && o->kind != BUF_FILE)
		usage_error("case %s needs a file: buffer (it truncates and punches "
			    "holes in it)", o->cs->name);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lopts[] = {
		{ "buffer", required_argument, NULL, 'b' },
		{ "peer", required_argument, NULL, 'p' },
		{ "case", required_argument, NULL, 'c' },
		{ "size", required_argument, NULL, 's' },
		{ "offset", required_argument, NULL, 'o' },
		{ "peer-offset", required_argument, NULL, 'P' },
		{ "file-size", required_argument, NULL, 'f' },
		{ "duration-ms", required_argument, NULL, 'd' },
		{ "seed", required_argument, NULL, 'S' },
		{ "align-va", required_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	const char *env = getenv("NVH_ODIRECT_CORRUPT");
	int ch;

	*o = (struct opts){ .size = 4096, .seed = 1, .align_va = SZ_2M,
			    .duration_ms = 2000 };
	o->corrupt = env && !strcmp(env, "1");
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 'b': o->buffer = optarg; o->kind = parse_buffer(optarg, false, &o->path); break;
		case 'p': o->peer = optarg; break;
		case 'c': o->cs = parse_case(optarg); break;
		case 's': o->size = parse_size("size", optarg); break;
		case 'o': o->offset = parse_size("offset", optarg); break;
		case 'P': o->peer_offset = parse_size("peer-offset", optarg); break;
		case 'f': o->file_size = parse_size("file-size", optarg); break;
		case 'd': o->duration_ms = parse_num("duration-ms", optarg, 86400000); break;
		case 'S': o->seed = (uint64_t)parse_num("seed", optarg, LLONG_MAX); break;
		case 'a': o->align_va = parse_size("align-va", optarg); break;
		default: usage_error("bad option '%s'; %s", argv[optind - 1], usage_text);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'; %s", argv[optind], usage_text);
	check_opts(o);
}

int main(int argc, char **argv)
{
	struct opts o;
	struct ctx c = { .o = &o };
	bool completed;

	parse_args(argc, argv, &o);
	debug_corrupt = o.corrupt;
	crc32_init();
	if (guard_signal(SIGBUS))
		fail("sigaction(SIGBUS): %s", strerror(errno));
	completed = !fail_msg[0] && setup(&c) == 0 && o.cs->run(&c) == 0;
	if (!completed && fail_msg[0])
		fprintf(stderr, "nvh-odirect: %s\n", fail_msg);
	print_report(&o, completed);
	return completed ? 0 : 1;
}
