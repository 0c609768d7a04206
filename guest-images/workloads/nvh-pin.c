/*
 * nvh-pin - pin the pages of a buffer the way RDMA-like users do, and report
 * what the kernel answered.
 *
 * Buffers: an fsdax file (ext4/xfs mounted -o dax), a device-dax character
 * device, and as controls anonymous memory, shmem (memfd) and a page-cache
 * file.  Methods: vmsplice() into a pipe that is held open (plain FOLL_GET
 * page references), io_uring fixed buffers and an RDMA memory region
 * (FOLL_LONGTERM pins), the kernel's gup_test debugfs ioctls
 * (CONFIG_GUP_TEST), or none (map and touch only, for removal-while-mapped
 * tests).  With --hold the pin is kept until a signal releases it.
 *
 * The program observes: every line on stdout is one JSON object (the events
 * of --hold, then the final report); the caller judges.  Diagnostics go to
 * stderr.  Exit status: 0 every step ran (whatever the kernel answered, a
 * refused pin included), 1 a setup step failed ("completed": false; the
 * report is still printed), 2 usage error (one line on stderr, no JSON).
 *
 * Build: gcc -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -o nvh-pin nvh-pin.c \
 *            -luring -libverbs
 * See README.md next to this file for the CLI, the signals and the JSON fields.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <linux/types.h>

#include <infiniband/verbs.h>
#include <liburing.h>

#define NVH_PROG "nvh-pin"
#include "nvh-common.h"

#define CHUNK (1UL << 20)		/* unit of read-back comparisons */
#define RDMA_BOUNCE (256UL << 10)	/* RDMA READ verification buffer */
#define RDMA_TIMEOUT_NS (30LL * 1000000000LL)

/*
 * The gup_test debugfs ABI (mm/gup_test.h), defined here rather than
 * included: the header is not exported to userspace.  Layout and numbers as
 * in 6.1; PIN_LONGTERM_TEST_START/STOP and their argument appeared in v6.2.
 */
#define GUP_TEST_DIR "/sys/kernel/debug"
#define GUP_TEST_PATH GUP_TEST_DIR "/gup_test"

struct gt_args {
	__u64 get_delta_usec;
	__u64 put_delta_usec;
	__u64 addr;
	__u64 size;
	__u32 nr_pages_per_call;
	__u32 gup_flags;
	__u32 test_flags;
	__u32 which_pages[8];
};

struct gt_longterm_args {
	__u64 addr;
	__u64 size;
	__u32 flags;
};

#define GT_PIN_FAST_BENCHMARK		_IOWR('g', 2, struct gt_args)
#define GT_PIN_LONGTERM_BENCHMARK	_IOWR('g', 3, struct gt_args)
#define GT_PIN_BASIC_TEST		_IOWR('g', 5, struct gt_args)
#define GT_PIN_LONGTERM_TEST_START	_IOW('g', 7, struct gt_longterm_args)
#define GT_PIN_LONGTERM_TEST_STOP	_IO('g', 8)
#define GT_LONGTERM_FLAG_USE_WRITE	1
#define GT_FOLL_WRITE			0x01	/* the kernel's FOLL_WRITE gup flag */

/* ------------------------------------------------------------------ options */

enum method { M_VMSPLICE, M_IO_URING, M_RDMA, M_GUP_TEST, M_NONE, M_COUNT };
static const char *const method_name[] = {
	"vmsplice", "io_uring", "rdma", "gup_test", "none",
};

enum gt_sub { GT_BASIC, GT_FAST, GT_LONGTERM, GT_HOLD, GT_COUNT };
static const char *const gt_sub_name[] = { "basic", "fast", "longterm", "hold" };

struct opts {
	enum buf_kind kind;
	const char *buffer;	/* as given, for the report */
	const char *path;	/* file/devdax path, else NULL */
	int method;		/* enum method, -1 unset */
	size_t size;
	size_t file_size;	/* 0: the mapping length */
	size_t align_va;
	const char *rdma_dev;	/* NULL: the first device */
	int gt_sub;		/* enum gt_sub, -1 unset */
	const char *peer;	/* NULL: an O_TMPFILE in /tmp */
	bool hold;
	uint64_t seed;
};

/* ------------------------------------------------------------------ report */

/* One kernel call: the pin, or the release of the pin. */
struct call {
	bool valid;
	const char *call;
	long long ret;
	int err;		/* errno, 0 for none */
	bool ok;
	long long ns;
};

/* Bytes seen through the pin compared with the pattern the CPU stored. */
struct verify {
	bool valid;
	const char *via;
	size_t bytes;
	size_t mismatches;
	long long first;	/* first differing buffer offset, -1 none */
};

static struct {
	bool supported;
	uintptr_t map_addr;
	size_t map_len;
	long long file_size;	/* -1: not a file buffer */
	bool memlock_raised;
	int memlock_err;
	struct call pin, release;
	struct verify verify;
	unsigned long touches;
	const char *release_signal;
	struct {
		bool valid;
		long long pipe_size, spliced, calls, tee_ret;
		int tee_err;
	} vs;
	struct {
		bool valid;
		char peer[256];
		bool wrote;
		long long write_res;
	} iou;
	struct {
		bool valid;
		char device[64];
		int num_devices;
		int port, gid_index;
		long long read_bytes;
		const char *wc_status;	/* NULL: every READ completed */
	} rdma;
	struct {
		bool valid, present, debugfs_mounted;
		int mount_err;
		const char *ioctl;
		long long get_delta_usec, put_delta_usec, pinned_bytes;
		unsigned nr_pages_per_call;
	} gt;
} R = { .file_size = -1, .supported = true };

static void set_call(struct call *c, const char *name, long long ret, int err,
		     bool ok, long long ns)
{
	*c = (struct call){ true, name, ret, err, ok, ns };
}

/* ---------------------------------------------------------------- pattern */

/*
 * The streams of nvh-common.h: every byte is a function of (seed, stream, buffer offset),
 * so a mismatch offset names a position and data from another stream or run never
 * matches.  The buffer holds stream 1 ("pattern"); the io_uring peer is first filled with
 * stream 2 ("stale"), so a write that moves nothing cannot pass.
 */
#define STREAM_PATTERN 1
#define STREAM_STALE 2

/* ------------------------------------------------ SIGBUS / SIGSEGV guard */

/*
 * CPU accesses to the mapping run under the guard of nvh-common.h (run_guarded()): a DAX
 * mapping whose device or file went away (or a device smaller than the buffer) raises
 * SIGBUS, which then becomes a reported result instead of killing the program without
 * JSON.
 */
static const char *si_code_name(int sig, int code)
{
	static char other[16];

	if (sig == SIGBUS) {
		switch (code) {
		case BUS_ADRALN: return "BUS_ADRALN";
		case BUS_ADRERR: return "BUS_ADRERR";
		case BUS_OBJERR: return "BUS_OBJERR";
#ifdef BUS_MCEERR_AR
		case BUS_MCEERR_AR: return "BUS_MCEERR_AR";
#endif
#ifdef BUS_MCEERR_AO
		case BUS_MCEERR_AO: return "BUS_MCEERR_AO";
#endif
		}
	} else if (sig == SIGSEGV) {
		switch (code) {
		case SEGV_MAPERR: return "SEGV_MAPERR";
		case SEGV_ACCERR: return "SEGV_ACCERR";
		}
	}
	snprintf(other, sizeof(other), "%d", code);
	return other;
}

/* ---------------------------------------------------------------- context */

struct ctx {
	const struct opts *o;
	size_t page;
	uint64_t key;		/* stream "pattern" */
	int buf_fd;
	unsigned char *map;
	size_t map_len;
	unsigned char *exp, *got;	/* CHUNK-sized comparison buffers */
	bool held;		/* the pin holds something until release_pin() */
	/* vmsplice */
	int pfd[2];
	/* io_uring */
	bool ring_ok;
	struct io_uring ring;
	int peer_fd;
	/* rdma */
	struct ibv_device **devs;
	struct ibv_context *ibctx;
	struct ibv_pd *pd;
	struct ibv_mr *mr;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	struct ibv_mr *bounce_mr;
	unsigned char *bounce;
	/* gup_test */
	int gt_fd;
};

/* Offset of the faulting address inside the mapping, -1 outside it. */
static long long fault_offset(const struct ctx *c)
{
	uintptr_t a = (uintptr_t)fault_addr, m = (uintptr_t)c->map;

	return a >= m && a < m + c->map_len ? (long long)(a - m) : -1;
}

static void verify_begin(const char *via)
{
	R.verify = (struct verify){ .valid = true, .via = via, .first = -1 };
}

static bool debug_corrupt;	/* NVH_PIN_CORRUPT=1 test hook */

/*
 * Compare n <= CHUNK bytes seen at buffer offset pos with the pattern.  The
 * test hook counts the byte at offset size/2 as flipped, to prove that a
 * mismatch reaches the report.
 */
static void verify_bytes(struct ctx *c, const unsigned char *seen, size_t n,
			 uint64_t pos)
{
	uint64_t flip = debug_corrupt ? c->o->size / 2 : UINT64_MAX;

	pattern_range(c->key, c->exp, pos, n);
	for (size_t i = 0; i < n; i++) {
		unsigned char b = seen[i] ^ (pos + i == flip ? 0xff : 0);

		if (c->exp[i] == b)
			continue;
		if (R.verify.first < 0)
			R.verify.first = (long long)(pos + i);
		R.verify.mismatches++;
	}
	R.verify.bytes += n;
}

/* ------------------------------------------------------------ the buffer */

static int open_buffer(struct ctx *c)
{
	const struct opts *o = c->o;
	struct stat st;
	off_t want;

	switch (o->kind) {
	case BUF_ANON:
		c->buf_fd = -1;
		return 0;
	case BUF_SHMEM:
		c->buf_fd = memfd_create("nvh-pin", MFD_CLOEXEC);
		if (c->buf_fd < 0)
			return fail("memfd_create: %s", strerror(errno));
		if (ftruncate(c->buf_fd, (off_t)c->map_len))
			return fail("ftruncate(memfd, %zu): %s", c->map_len, strerror(errno));
		return 0;
	case BUF_FILE:
		c->buf_fd = open(o->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (c->buf_fd < 0)
			return fail("open %s: %s", o->path, strerror(errno));
		if (fstat(c->buf_fd, &st))
			return fail("fstat %s: %s", o->path, strerror(errno));
		if (!S_ISREG(st.st_mode))
			return fail("%s is not a regular file", o->path);
		want = (off_t)(o->file_size ? o->file_size : c->map_len);
		if (st.st_size < want && extend_file(c->buf_fd, want))
			return fail("extending %s to %lld bytes (fallocate/ftruncate): %s",
				    o->path, (long long)want, strerror(errno));
		R.file_size = st.st_size > want ? st.st_size : want;
		return 0;
	case BUF_DEVDAX:
		c->buf_fd = open(o->path, O_RDWR | O_CLOEXEC);
		if (c->buf_fd < 0)
			return fail("open %s: %s", o->path, strerror(errno));
		return 0;
	}
	return fail("unknown buffer kind");
}

static int map_buffer(struct ctx *c)
{
	int flags = c->buf_fd < 0 ? MAP_PRIVATE | MAP_ANONYMOUS : MAP_SHARED;
	void *p = map_aligned(c->buf_fd, c->map_len, PROT_READ | PROT_WRITE, flags,
			      c->o->align_va);

	if (p == MAP_FAILED)
		return fail("mmap %zu bytes of %s: %s", c->map_len, c->o->buffer,
			    strerror(errno));
	c->map = p;
	R.map_addr = (uintptr_t)p;
	R.map_len = c->map_len;
	return 0;
}

static void do_fill(void *arg)
{
	struct ctx *c = arg;

	pattern_range(c->key, c->map, 0, c->o->size);
}

/*
 * CPU stores of the pattern: faults every page in before the pin, and is the buffer's
 * seed in every mode (--hold included).  Every byte is a function of (seed, offset), so
 * every page holds bytes no other page holds; verify and the --hold read pass compare
 * with it, never with whatever the device held.  No seed goes in before through the fd or
 * another mapping: this fill overwrites all of the pinned range before the pin, so such a
 * seed could never be seen there.
 */
static int fill_buffer(struct ctx *c)
{
	if (run_guarded(do_fill, c))
		return 0;
	return fail("storing the pattern into the buffer: %s (%s) at offset %lld",
		    signal_name(fault_signo), si_code_name(fault_signo, fault_code),
		    fault_offset(c));
}

static void do_cpu_verify(void *arg)
{
	struct ctx *c = arg;

	for (size_t pos = 0; pos < c->o->size; pos += CHUNK) {
		size_t n = c->o->size - pos < CHUNK ? c->o->size - pos : CHUNK;

		memcpy(c->got, c->map + pos, n);
		verify_bytes(c, c->got, n, pos);
	}
}

/* The buffer read back by the CPU (methods that move no data). */
static int cpu_verify(struct ctx *c, const char *via)
{
	verify_begin(via);
	if (run_guarded(do_cpu_verify, c))
		return 0;
	return fail("reading the buffer back: %s (%s) at offset %lld",
		    signal_name(fault_signo), si_code_name(fault_signo, fault_code),
		    fault_offset(c));
}

/* ---------------------------------------------------------------- vmsplice */

static int new_pipe(int fds[2], size_t size, long long *got_size)
{
	int r;

	if (pipe2(fds, O_CLOEXEC))
		return fail("pipe2: %s", strerror(errno));
	/* One slot per page: the whole buffer must fit without a reader. */
	r = fcntl(fds[1], F_SETPIPE_SZ, (int)(size > INT_MAX ? INT_MAX : size));
	if (r < 0) {
		fail("fcntl(F_SETPIPE_SZ, %zu): %s", size, strerror(errno));
		close(fds[0]);
		close(fds[1]);
		fds[0] = fds[1] = -1;
		return -1;
	}
	if (got_size)
		*got_size = r;
	return 0;
}

/*
 * tee() duplicates the pipe's page references into a second pipe without
 * consuming them, so the bytes are read back while the first pipe keeps
 * holding the pages.
 */
static int vmsplice_verify(struct ctx *c, size_t spliced)
{
	int q[2];
	ssize_t t, n;
	size_t pos = 0;

	if (new_pipe(q, spliced, NULL))
		return -1;
	verify_begin("pipe_tee");
	t = tee(c->pfd[0], q[1], spliced, SPLICE_F_NONBLOCK);
	R.vs.tee_ret = t;
	R.vs.tee_err = t < 0 ? errno : 0;
	while (t > 0 && pos < (size_t)t) {
		size_t want = (size_t)t - pos < CHUNK ? (size_t)t - pos : CHUNK;

		n = read(q[0], c->got, want);
		if (n <= 0)
			break;
		verify_bytes(c, c->got, (size_t)n, pos);
		pos += (size_t)n;
	}
	close(q[0]);
	close(q[1]);
	return 0;
}

static int pin_vmsplice(struct ctx *c)
{
	size_t size = c->o->size, done = 0;
	long long t0, calls = 0;
	int err = 0;

	R.vs.valid = true;
	R.vs.tee_ret = -1;
	if (new_pipe(c->pfd, size, &R.vs.pipe_size))
		return -1;
	t0 = now_ns();
	while (done < size) {
		struct iovec iov = { c->map + done, size - done };
		ssize_t n = vmsplice(c->pfd[1], &iov, 1, SPLICE_F_NONBLOCK);

		calls++;
		if (n < 0)
			err = errno;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	set_call(&R.pin, "vmsplice", done || !err ? (long long)done : -1,
		 done == size ? 0 : err, done == size, now_ns() - t0);
	R.vs.spliced = (long long)done;
	R.vs.calls = calls;
	c->held = done > 0;
	return done ? vmsplice_verify(c, done) : 0;
}

/* ---------------------------------------------------------------- io_uring */

static int open_peer(struct ctx *c)
{
	const char *peer = c->o->peer;
	char tmpl[] = "/tmp/nvh-pin-peer.XXXXXX";

	if (peer) {
		c->peer_fd = open(peer, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (c->peer_fd < 0)
			return fail("open peer %s: %s", peer, strerror(errno));
		snprintf(R.iou.peer, sizeof(R.iou.peer), "%s", peer);
		return 0;
	}
	c->peer_fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (c->peer_fd >= 0) {
		snprintf(R.iou.peer, sizeof(R.iou.peer), "/tmp (O_TMPFILE)");
		return 0;
	}
	c->peer_fd = mkostemp(tmpl, O_CLOEXEC);
	if (c->peer_fd < 0)
		return fail("creating a scratch file in /tmp: %s", strerror(errno));
	unlink(tmpl);
	snprintf(R.iou.peer, sizeof(R.iou.peer), "%s (unlinked)", tmpl);
	return 0;
}

/* Stream "stale" over the peer range, so a write that moves nothing fails. */
static int peer_stale(struct ctx *c)
{
	uint64_t key = stream_key(c->o->seed, STREAM_STALE);

	for (size_t pos = 0; pos < c->o->size; pos += CHUNK) {
		size_t n = c->o->size - pos < CHUNK ? c->o->size - pos : CHUNK;

		pattern_range(key, c->got, pos, n);
		if (pwrite(c->peer_fd, c->got, n, (off_t)pos) != (ssize_t)n)
			return fail("writing the stale pattern to the peer: %s",
				    strerror(errno));
	}
	return 0;
}

static int peer_verify(struct ctx *c)
{
	verify_begin("peer_readback");
	for (size_t pos = 0; pos < c->o->size; pos += CHUNK) {
		size_t n = c->o->size - pos < CHUNK ? c->o->size - pos : CHUNK;
		ssize_t r = pread(c->peer_fd, c->got, n, (off_t)pos);

		if (r < 0)
			return fail("reading the peer back: %s", strerror(errno));
		verify_bytes(c, c->got, (size_t)r, pos);
		if ((size_t)r < n)
			break;
	}
	return 0;
}

/* One IORING_OP_WRITE_FIXED of the whole registered buffer to the peer. */
static int write_fixed(struct ctx *c)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);
	struct io_uring_cqe *cqe;
	int r;

	if (!sqe)
		return fail("io_uring_get_sqe: no free entry");
	io_uring_prep_write_fixed(sqe, c->peer_fd, c->map, (unsigned)c->o->size, 0, 0);
	r = io_uring_submit(&c->ring);
	if (r != 1)
		return fail("io_uring_submit: %s", r < 0 ? strerror(-r) : "nothing submitted");
	r = io_uring_wait_cqe(&c->ring, &cqe);
	if (r < 0)
		return fail("io_uring_wait_cqe: %s", strerror(-r));
	R.iou.wrote = true;
	R.iou.write_res = cqe->res;
	io_uring_cqe_seen(&c->ring, cqe);
	return 0;
}

static int pin_io_uring(struct ctx *c)
{
	struct iovec iov = { c->map, c->o->size };
	long long t0;
	int r;

	R.iou.valid = true;
	r = io_uring_queue_init(4, &c->ring, 0);
	if (r < 0)
		return fail("io_uring_queue_init: %s", strerror(-r));
	c->ring_ok = true;
	if (open_peer(c) || peer_stale(c))
		return -1;
	t0 = now_ns();
	r = io_uring_register_buffers(&c->ring, &iov, 1);
	set_call(&R.pin, "io_uring_register_buffers", r, r < 0 ? -r : 0, r == 0,
		 now_ns() - t0);
	if (r)
		return 0;
	c->held = true;
	if (write_fixed(c))
		return -1;
	return peer_verify(c);
}

/* -------------------------------------------------------------------- rdma */

/*
 * A GID to address our own port: RoCE needs one (rxe is RoCE v2).  Prefer a
 * RoCE v2 IPv4-mapped entry (routable to ourselves whatever the IPv6
 * setup), then any RoCE v2 entry, then any non-zero entry.
 */
static int pick_gid(struct ctx *c, int port, int tbl_len, union ibv_gid *out)
{
	static const unsigned char v4mapped[12] = { [10] = 0xff, [11] = 0xff };
	int best = -1, best_score = -1;

	for (int i = 0; i < tbl_len; i++) {
		struct ibv_gid_entry e;
		union ibv_gid zero = { 0 };
		int score;

		if (ibv_query_gid_ex(c->ibctx, (uint32_t)port, (uint32_t)i, &e, 0))
			continue;
		if (!memcmp(&e.gid, &zero, sizeof(zero)))
			continue;
		score = (e.gid_type == IBV_GID_TYPE_ROCE_V2) * 2 +
			!memcmp(e.gid.raw, v4mapped, sizeof(v4mapped));
		if (score > best_score) {
			best = i;
			best_score = score;
			*out = e.gid;
		}
	}
	return best;
}

static int qp_connect_self(struct ctx *c, int port, const struct ibv_port_attr *pa)
{
	struct ibv_qp_attr a;
	union ibv_gid gid;
	int gidx = -1, r;

	if (pa->link_layer == IBV_LINK_LAYER_ETHERNET) {
		gidx = pick_gid(c, port, pa->gid_tbl_len, &gid);
		if (gidx < 0)
			return fail("RDMA port %d has no GID (is the netdev up?)", port);
	}
	R.rdma.gid_index = gidx;
	a = (struct ibv_qp_attr){
		.qp_state = IBV_QPS_INIT, .pkey_index = 0, .port_num = (uint8_t)port,
		.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ |
				   IBV_ACCESS_REMOTE_WRITE,
	};
	r = ibv_modify_qp(c->qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
			  IBV_QP_ACCESS_FLAGS);
	if (r)
		return fail("ibv_modify_qp(INIT): %s", strerror(r));
	a = (struct ibv_qp_attr){
		.qp_state = IBV_QPS_RTR, .path_mtu = pa->active_mtu,
		.dest_qp_num = c->qp->qp_num, .rq_psn = 0, .max_dest_rd_atomic = 1,
		.min_rnr_timer = 12,
		.ah_attr = { .dlid = pa->lid, .port_num = (uint8_t)port },
	};
	if (gidx >= 0) {
		a.ah_attr.is_global = 1;
		a.ah_attr.grh.dgid = gid;
		a.ah_attr.grh.sgid_index = (uint8_t)gidx;
		a.ah_attr.grh.hop_limit = 1;
	}
	r = ibv_modify_qp(c->qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
			  IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
			  IBV_QP_MIN_RNR_TIMER);
	if (r)
		return fail("ibv_modify_qp(RTR): %s", strerror(r));
	a = (struct ibv_qp_attr){
		.qp_state = IBV_QPS_RTS, .timeout = 14, .retry_cnt = 7, .rnr_retry = 7,
		.sq_psn = 0, .max_rd_atomic = 1,
	};
	r = ibv_modify_qp(c->qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
			  IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
	if (r)
		return fail("ibv_modify_qp(RTS): %s", strerror(r));
	return 0;
}

/* RDMA READ of [pos, pos+len) through the buffer's MR (its rkey) into the bounce MR. */
static int rdma_read(struct ctx *c, size_t pos, size_t len, struct ibv_wc *wc)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)c->bounce, .length = (uint32_t)len,
		.lkey = c->bounce_mr->lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = pos, .sg_list = &sge, .num_sge = 1,
		.opcode = IBV_WR_RDMA_READ, .send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = (uintptr_t)(c->map + pos), .rkey = c->mr->rkey },
	}, *bad;
	long long deadline = now_ns() + RDMA_TIMEOUT_NS;
	int r = ibv_post_send(c->qp, &wr, &bad), n;

	if (r)
		return fail("ibv_post_send(RDMA_READ): %s", strerror(r));
	while ((n = ibv_poll_cq(c->cq, 1, wc)) == 0) {
		if (now_ns() > deadline)
			return fail("RDMA READ at offset %zu: no completion within %lld s",
				    pos, RDMA_TIMEOUT_NS / 1000000000LL);
	}
	if (n < 0)
		return fail("ibv_poll_cq: %d", n);
	return 0;
}

static void rdma_verify_teardown(struct ctx *c)
{
	if (c->qp)
		ibv_destroy_qp(c->qp);
	if (c->cq)
		ibv_destroy_cq(c->cq);
	if (c->bounce_mr)
		ibv_dereg_mr(c->bounce_mr);
	free(c->bounce);
	c->qp = NULL;
	c->cq = NULL;
	c->bounce_mr = NULL;
	c->bounce = NULL;
}

/*
 * What an RDMA peer would see: a loopback RC queue pair (connected to
 * itself) RDMA-READs the registered buffer into a bounce MR, chunk by
 * chunk.  The queue pair and the bounce MR are gone again before the
 * program holds or releases the buffer's MR.
 */
static int rdma_verify(struct ctx *c)
{
	struct ibv_port_attr pa;
	struct ibv_qp_init_attr qa = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 1, .max_recv_wr = 1, .max_send_sge = 1,
			 .max_recv_sge = 1 },
	};
	int port = 1, r = -1;

	R.rdma.port = port;
	if (ibv_query_port(c->ibctx, (uint8_t)port, &pa))
		return fail("ibv_query_port(%d): %s", port, strerror(errno));
	c->bounce = aligned_alloc(c->page, RDMA_BOUNCE);
	if (!c->bounce)
		return fail("aligned_alloc(%lu): %s", RDMA_BOUNCE, strerror(errno));
	c->bounce_mr = ibv_reg_mr(c->pd, c->bounce, RDMA_BOUNCE, IBV_ACCESS_LOCAL_WRITE);
	if (!c->bounce_mr) {
		fail("ibv_reg_mr(bounce buffer): %s", strerror(errno));
		goto out;
	}
	c->cq = ibv_create_cq(c->ibctx, 4, NULL, NULL, 0);
	if (!c->cq) {
		fail("ibv_create_cq: %s", strerror(errno));
		goto out;
	}
	qa.send_cq = qa.recv_cq = c->cq;
	c->qp = ibv_create_qp(c->pd, &qa);
	if (!c->qp) {
		fail("ibv_create_qp(RC): %s", strerror(errno));
		goto out;
	}
	if (qp_connect_self(c, port, &pa))
		goto out;
	verify_begin("rdma_read");
	for (size_t pos = 0; pos < c->o->size; pos += RDMA_BOUNCE) {
		size_t n = c->o->size - pos < RDMA_BOUNCE ? c->o->size - pos : RDMA_BOUNCE;
		struct ibv_wc wc;

		if (rdma_read(c, pos, n, &wc))
			goto out;
		if (wc.status != IBV_WC_SUCCESS) {
			R.rdma.wc_status = ibv_wc_status_str(wc.status);
			break;	/* the kernel's answer: reported, not a setup failure */
		}
		R.rdma.read_bytes += (long long)n;
		verify_bytes(c, c->bounce, n, pos);
	}
	r = 0;
out:
	rdma_verify_teardown(c);
	return r;
}

static int pin_rdma(struct ctx *c)
{
	const int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
			   IBV_ACCESS_REMOTE_READ;
	struct ibv_device *dev = NULL;
	long long t0;
	int n = 0, err;

	R.rdma.valid = true;
	R.rdma.gid_index = -1;
	c->devs = ibv_get_device_list(&n);
	if (!c->devs)
		return fail("ibv_get_device_list: %s", strerror(errno));
	R.rdma.num_devices = n;
	for (int i = 0; i < n && !dev; i++)
		if (!c->o->rdma_dev || !strcmp(ibv_get_device_name(c->devs[i]), c->o->rdma_dev))
			dev = c->devs[i];
	if (!dev)
		return n ? fail("RDMA device %s not found", c->o->rdma_dev)
			 : fail("no RDMA device (soft-RoCE: modprobe rdma_rxe; "
				"rdma link add rxe0 type rxe netdev IFACE)");
	snprintf(R.rdma.device, sizeof(R.rdma.device), "%s", ibv_get_device_name(dev));
	c->ibctx = ibv_open_device(dev);
	if (!c->ibctx)
		return fail("ibv_open_device(%s): %s", R.rdma.device, strerror(errno));
	c->pd = ibv_alloc_pd(c->ibctx);
	if (!c->pd)
		return fail("ibv_alloc_pd: %s", strerror(errno));
	errno = 0;
	t0 = now_ns();
	c->mr = ibv_reg_mr(c->pd, c->map, c->o->size, access);
	err = c->mr ? 0 : errno;
	set_call(&R.pin, "ibv_reg_mr", c->mr ? 0 : -1, err, c->mr != NULL, now_ns() - t0);
	if (!c->mr)
		return 0;
	c->held = true;
	return rdma_verify(c);
}

/* ---------------------------------------------------------------- gup_test */

static bool dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	bool empty = true;

	if (!d)
		return true;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			empty = false;
	closedir(d);
	return empty;
}

static int pin_gup_test(struct ctx *c)
{
	static const struct {
		unsigned long cmd;
		const char *name;
	} bench[] = {
		[GT_BASIC] = { GT_PIN_BASIC_TEST, "PIN_BASIC_TEST" },
		[GT_FAST] = { GT_PIN_FAST_BENCHMARK, "PIN_FAST_BENCHMARK" },
		[GT_LONGTERM] = { GT_PIN_LONGTERM_BENCHMARK, "PIN_LONGTERM_BENCHMARK" },
	};
	const struct opts *o = c->o;
	long long t0;
	int r, err;

	R.gt.valid = true;
	R.gt.pinned_bytes = -1;
	if (access(GUP_TEST_PATH, F_OK) && dir_is_empty(GUP_TEST_DIR)) {
		if (mount("debugfs", GUP_TEST_DIR, "debugfs", 0, NULL) == 0)
			R.gt.debugfs_mounted = true;
		else if (errno != EBUSY)
			R.gt.mount_err = errno;
	}
	if (access(GUP_TEST_PATH, F_OK)) {
		R.supported = false;
		fprintf(stderr, "nvh-pin: %s: %s (kernel without CONFIG_GUP_TEST?)\n",
			GUP_TEST_PATH, strerror(errno));
		return 0;
	}
	R.gt.present = true;
	c->gt_fd = open(GUP_TEST_PATH, O_RDWR | O_CLOEXEC);
	if (c->gt_fd < 0)
		return fail("open %s: %s", GUP_TEST_PATH, strerror(errno));

	if (o->gt_sub == GT_HOLD) {
		struct gt_longterm_args a = {
			.addr = (uintptr_t)c->map, .size = o->size,
			.flags = GT_LONGTERM_FLAG_USE_WRITE,
		};

		R.gt.ioctl = "PIN_LONGTERM_TEST_START";
		t0 = now_ns();
		r = ioctl(c->gt_fd, GT_PIN_LONGTERM_TEST_START, &a);
		err = r < 0 ? errno : 0;
		set_call(&R.pin, R.gt.ioctl, r, err, r == 0, now_ns() - t0);
		if (r < 0 && (err == ENOTTY || err == EINVAL)) {
			R.supported = false;	/* before v6.2: no such ioctl */
			return 0;
		}
		c->held = r == 0;
	} else {
		struct gt_args a = {
			.addr = (uintptr_t)c->map, .size = o->size,
			.nr_pages_per_call = (__u32)(o->size / c->page),
			.gup_flags = GT_FOLL_WRITE,
		};

		/*
		 * Pin and unpin in the one call.  A refused pin still returns 0:
		 * the kernel shrinks .size to what it pinned and drops the error.
		 */
		R.gt.ioctl = bench[o->gt_sub].name;
		R.gt.nr_pages_per_call = a.nr_pages_per_call;
		t0 = now_ns();
		r = ioctl(c->gt_fd, bench[o->gt_sub].cmd, &a);
		err = r < 0 ? errno : 0;
		set_call(&R.pin, R.gt.ioctl, r, err, r == 0 && a.size == o->size,
			 now_ns() - t0);
		if (r == 0) {
			R.gt.get_delta_usec = (long long)a.get_delta_usec;
			R.gt.put_delta_usec = (long long)a.put_delta_usec;
			R.gt.pinned_bytes = (long long)a.size;
		}
	}
	return R.pin.ok ? cpu_verify(c, "cpu_after_pin") : 0;
}

/* ---------------------------------------------------------------- release */

static int run_method(struct ctx *c)
{
	switch (c->o->method) {
	case M_VMSPLICE: return pin_vmsplice(c);
	case M_IO_URING: return pin_io_uring(c);
	case M_RDMA: return pin_rdma(c);
	case M_GUP_TEST: return pin_gup_test(c);
	case M_NONE: return cpu_verify(c, "cpu_readback");
	}
	return fail("unknown method");
}

/* Drop what the pin holds; the timed call is the one that unpins. */
static void release_pin(struct ctx *c)
{
	long long t0 = now_ns();
	int r, err = 0;

	if (!c->held)
		return;
	c->held = false;
	switch (c->o->method) {
	case M_VMSPLICE:
		/* The last close of the pipe frees its buffers and the page references. */
		r = close(c->pfd[0]);
		err = r ? errno : 0;
		if (close(c->pfd[1]) && !r) {
			r = -1;
			err = errno;
		}
		c->pfd[0] = c->pfd[1] = -1;
		set_call(&R.release, "close_pipe", r, err, r == 0, now_ns() - t0);
		break;
	case M_IO_URING:
		r = io_uring_unregister_buffers(&c->ring);
		set_call(&R.release, "io_uring_unregister_buffers", r, r < 0 ? -r : 0,
			 r == 0, now_ns() - t0);
		break;
	case M_RDMA:
		r = ibv_dereg_mr(c->mr);	/* 0 or an errno value */
		set_call(&R.release, "ibv_dereg_mr", r, r, r == 0, now_ns() - t0);
		c->mr = NULL;
		break;
	case M_GUP_TEST:
		r = ioctl(c->gt_fd, GT_PIN_LONGTERM_TEST_STOP);
		err = r < 0 ? errno : 0;
		set_call(&R.release, "PIN_LONGTERM_TEST_STOP", r, err, r == 0,
			 now_ns() - t0);
		break;
	}
}

static void cleanup(struct ctx *c)
{
	if (c->pfd[0] >= 0)
		close(c->pfd[0]);
	if (c->pfd[1] >= 0)
		close(c->pfd[1]);
	if (c->ring_ok)
		io_uring_queue_exit(&c->ring);
	if (c->peer_fd >= 0)
		close(c->peer_fd);
	rdma_verify_teardown(c);
	if (c->mr)
		ibv_dereg_mr(c->mr);
	if (c->pd)
		ibv_dealloc_pd(c->pd);
	if (c->ibctx)
		ibv_close_device(c->ibctx);
	if (c->devs)
		ibv_free_device_list(c->devs);
	if (c->gt_fd >= 0)
		close(c->gt_fd);
	if (c->map)
		munmap(c->map, c->map_len);
	if (c->buf_fd >= 0)
		close(c->buf_fd);
}

/* ---------------------------------------------------------------- output */

static void kcall(const char *k, const struct call *c)
{
	if (!c->valid) {
		knull(k);
		return;
	}
	jkey(k);
	jbegin();
	kstr("call", c->call);
	kint("ret", c->ret);
	kerr("errno", c->err);
	kbool("ok", c->ok);
	kint("ns", c->ns);
	jend();
}

static void kverify(const struct ctx *c)
{
	const struct verify *v = &R.verify;

	if (!v->valid) {
		knull("verify");
		return;
	}
	jkey("verify");
	jbegin();
	kstr("via", v->via);
	kbool("ok", v->bytes == c->o->size && v->mismatches == 0);
	kint("bytes", (long long)v->bytes);
	kint("mismatches", (long long)v->mismatches);
	kint("first_mismatch", v->first);
	jend();
}

static void print_pinned(const struct ctx *c)
{
	jbegin();
	kstr("event", "pinned");
	kint("pid", (long long)getpid());
	kstr("method", method_name[c->o->method]);
	kstr("buffer_kind", kind_name[c->o->kind]);
	kbool("supported", R.supported);
	kaddr("map_addr", R.map_addr);
	kcall("pin", &R.pin);
	kverify(c);
	jend();
	line_end();
}

static void method_extras(const struct opts *o)
{
	if (!R.vs.valid) {
		knull("vmsplice");
	} else {
		jkey("vmsplice");
		jbegin();
		kint("pipe_size", R.vs.pipe_size);
		kint("spliced", R.vs.spliced);
		kint("calls", R.vs.calls);
		kint("tee_ret", R.vs.tee_ret);
		kerr("tee_errno", R.vs.tee_err);
		jend();
	}
	if (!R.iou.valid) {
		knull("io_uring");
	} else {
		jkey("io_uring");
		jbegin();
		kstr("peer", R.iou.peer[0] ? R.iou.peer : NULL);
		if (R.iou.wrote) {
			kint("write_fixed_res", R.iou.write_res);
			kerr("write_fixed_errno", R.iou.write_res < 0 ? (int)-R.iou.write_res : 0);
		} else {
			knull("write_fixed_res");
			knull("write_fixed_errno");
		}
		jend();
	}
	if (!R.rdma.valid) {
		knull("rdma");
	} else {
		jkey("rdma");
		jbegin();
		kstr("device", R.rdma.device[0] ? R.rdma.device : NULL);
		kint("num_devices", R.rdma.num_devices);
		kint("port", R.rdma.port);
		kint("gid_index", R.rdma.gid_index);
		kint("read_bytes", R.rdma.read_bytes);
		kstr("wc_status", R.rdma.wc_status);
		jend();
	}
	if (!R.gt.valid) {
		knull("gup_test");
	} else {
		jkey("gup_test");
		jbegin();
		kstr("sub", gt_sub_name[o->gt_sub]);
		kbool("present", R.gt.present);
		kbool("debugfs_mounted", R.gt.debugfs_mounted);
		kerr("debugfs_mount_errno", R.gt.mount_err);
		kstr("ioctl", R.gt.ioctl);
		if (R.gt.pinned_bytes >= 0) {
			kint("pinned_bytes", R.gt.pinned_bytes);
			kint("get_delta_usec", R.gt.get_delta_usec);
			kint("put_delta_usec", R.gt.put_delta_usec);
			kint("nr_pages_per_call", R.gt.nr_pages_per_call);
		} else {
			knull("pinned_bytes");
			knull("get_delta_usec");
			knull("put_delta_usec");
			knull("nr_pages_per_call");
		}
		jend();
	}
}

static void print_final(const struct ctx *c, bool completed)
{
	const struct opts *o = c->o;

	jbegin();
	kstr("program", "nvh-pin");
	kstr("method", method_name[o->method]);
	kstr("buffer", o->buffer);
	kstr("buffer_kind", kind_name[o->kind]);
	kstr("path", o->path);
	kint("size", (long long)o->size);
	koff("file_size", R.file_size);
	kaddr("map_addr", R.map_addr);
	kint("map_len", (long long)R.map_len);
	kbool("map_addr_aligned_2m", R.map_addr && R.map_addr % SZ_2M == 0);
	kint("align_va", (long long)o->align_va);
	kuint("seed", o->seed);
	kbool("hold", o->hold);
	kbool("debug_corrupt", debug_corrupt);
	kbool("completed", completed);
	kstr("error", fail_msg[0] ? fail_msg : NULL);
	kbool("supported", R.supported);
	kbool("memlock_raised", R.memlock_raised);
	kerr("memlock_errno", R.memlock_err);
	kcall("pin", &R.pin);
	kverify(c);
	kcall("release", &R.release);
	kstr("release_signal", R.release_signal);
	kint("touches", (long long)R.touches);
	kint("sigbus_count", (long long)__atomic_load_n(&sigbus_count, __ATOMIC_RELAXED));
	method_extras(o);
	jend();
	line_end();
}

/* ---------------------------------------------------------------- --hold */

static volatile sig_atomic_t touch_requests, release_requested;

static void on_control(int sig)
{
	if (sig == SIGUSR1)
		touch_requests++;
	else
		release_requested = sig;
}

static volatile size_t touch_pos;
static volatile size_t read_as_written;

/* Reads alone first: a mapping whose PTEs are gone faults on a read, while one that was
 * only write-protected (writeback after the device went away) still reads, stale. Each
 * page's first word is compared with the pattern the fill stored there: one word names
 * the page and the run (zeroes, another page's or another seed's bytes do not match),
 * and one load per page keeps the pass a fault probe; verify checks every byte. */
static void do_read(void *arg)
{
	const struct ctx *c = arg;

	for (; touch_pos < c->o->size; touch_pos += c->page) {
		uint64_t w = *(volatile uint64_t *)(c->map + touch_pos);

		if (w == pattern_word(c->key, touch_pos))
			read_as_written++;
	}
}

static void do_touch(void *arg)
{
	const struct ctx *c = arg;

	for (; touch_pos < c->o->size; touch_pos += c->page) {
		volatile unsigned char *p = c->map + touch_pos;

		*p = *p;	/* read, then write the same byte back */
	}
}

/* SIGUSR1: read one byte of every page, then read and write one byte back in every page;
 * stop at the first fault ("pass" says which). */
static void touch_and_report(struct ctx *c)
{
	bool ok, read_ok;
	long long off, read_pages;

	touch_pos = 0;
	read_as_written = 0;
	read_ok = run_guarded(do_read, c);
	read_pages = (long long)(touch_pos / c->page);
	ok = read_ok;
	if (read_ok) {
		touch_pos = 0;
		ok = run_guarded(do_touch, c);
	}
	R.touches++;
	off = ok ? -1 : fault_offset(c);
	jbegin();
	kstr("event", "touched");
	kint("n", (long long)R.touches);
	kstr("pass", ok ? NULL : read_ok ? "write" : "read");
	kbool("read_sigbus", !read_ok && fault_signo == SIGBUS);
	kint("read_pages_ok", read_pages);
	kint("read_pages_as_written", (long long)read_as_written);
	kbool("sigbus", !ok && fault_signo == SIGBUS);
	kstr("signal", ok ? NULL : signal_name(fault_signo));
	kstr("si_code", ok ? NULL : si_code_name(fault_signo, fault_code));
	if (off >= 0)
		kint("fault_offset", off);
	else
		knull("fault_offset");
	kint("pages_ok", (long long)(touch_pos / c->page));
	kint("pages", (long long)(c->o->size / c->page));
	jend();
	line_end();
}

static void hold(struct ctx *c, const sigset_t *old)
{
	sigset_t wait_mask = *old;

	for (size_t i = 0; i < N_CONTROL; i++)
		sigdelset(&wait_mask, control_signals[i]);
	print_pinned(c);
	for (;;) {
		while (!touch_requests && !release_requested)
			sigsuspend(&wait_mask);
		for (; touch_requests; touch_requests--)
			touch_and_report(c);
		if (release_requested)
			break;
	}
	R.release_signal = signal_name(release_requested);
	release_pin(c);
	jbegin();
	kstr("event", "released");
	kstr("signal", R.release_signal);
	kcall("release", &R.release);
	jend();
	line_end();
}

/* --------------------------------------------------------------- parsing */

static const char usage_text[] =
	"usage: nvh-pin --buffer anon|shmem|file:PATH|devdax:PATH "
	"--method vmsplice|io_uring|rdma|gup_test|none [--size B] [--file-size B] "
	"[--align-va B] [--rdma-dev NAME] [--gup-test basic|fast|longterm|hold] "
	"[--peer PATH] [--hold] [--seed N]";

static int parse_name(const char *opt, const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(names[i], s))
			return i;
	usage_error("--%s: unknown value '%s'; %s", opt, s, usage_text);
}

static void check_opts(struct opts *o, size_t page)
{
	if (!o->buffer || o->method < 0)
		usage_error("--buffer and --method are required; %s", usage_text);
	if (!o->size || o->size % page)
		usage_error("--size must be a non-zero multiple of the page size (%zu)", page);
	if (o->method == M_IO_URING && o->size > (1UL << 30))
		usage_error("--size: io_uring fixed buffers are at most 1G");
	if (o->align_va < page || (o->align_va & (o->align_va - 1)))
		usage_error("--align-va must be a power of two >= the page size");
	if (o->kind == BUF_FILE && o->file_size && o->file_size < o->size)
		usage_error("--file-size %zu is smaller than --size %zu", o->file_size, o->size);
	if (o->gt_sub >= 0 && o->method != M_GUP_TEST)
		usage_error("--gup-test needs --method gup_test");
	if (o->method == M_GUP_TEST && o->gt_sub < 0)
		o->gt_sub = GT_BASIC;
	if (o->hold && o->method == M_GUP_TEST && o->gt_sub != GT_HOLD)
		usage_error("--hold with gup_test needs --gup-test hold (basic, fast and "
			    "longterm unpin within the ioctl)");
	if (o->rdma_dev && o->method != M_RDMA)
		usage_error("--rdma-dev needs --method rdma");
	if (o->peer && o->method != M_IO_URING)
		usage_error("--peer needs --method io_uring");
}

static void parse_args(int argc, char **argv, struct opts *o, size_t page)
{
	static const struct option lopts[] = {
		{ "buffer", required_argument, NULL, 'b' },
		{ "method", required_argument, NULL, 'm' },
		{ "size", required_argument, NULL, 's' },
		{ "file-size", required_argument, NULL, 'f' },
		{ "align-va", required_argument, NULL, 'a' },
		{ "rdma-dev", required_argument, NULL, 'r' },
		{ "gup-test", required_argument, NULL, 'g' },
		{ "peer", required_argument, NULL, 'p' },
		{ "hold", no_argument, NULL, 'H' },
		{ "seed", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int ch;

	*o = (struct opts){ .method = -1, .gt_sub = -1, .size = SZ_2M,
			    .align_va = SZ_2M, .seed = 1 };
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 'b': o->buffer = optarg; o->kind = parse_buffer(optarg, true, &o->path); break;
		case 'm': o->method = parse_name("method", optarg, method_name, M_COUNT); break;
		case 's': o->size = parse_size("size", optarg); break;
		case 'f': o->file_size = parse_size("file-size", optarg); break;
		case 'a': o->align_va = parse_size("align-va", optarg); break;
		case 'r': o->rdma_dev = optarg; break;
		case 'g': o->gt_sub = parse_name("gup-test", optarg, gt_sub_name, GT_COUNT); break;
		case 'p': o->peer = optarg; break;
		case 'H': o->hold = true; break;
		case 'S':
			errno = 0;
			o->seed = strtoull(optarg, &end, 0);
			if (errno || end == optarg || *end || *optarg == '-')
				usage_error("--seed: bad number '%s'", optarg);
			break;
		default:
			usage_error("bad option '%s'; %s", argv[optind - 1], usage_text);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'; %s", argv[optind], usage_text);
	check_opts(o, page);
}

/* ------------------------------------------------------------------ main */

static void raise_memlock(void)
{
	struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };

	if (setrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
		R.memlock_raised = true;
	} else {
		R.memlock_err = errno;
		fprintf(stderr, "nvh-pin: setrlimit(RLIMIT_MEMLOCK, infinity): %s\n",
			strerror(errno));
	}
}

int main(int argc, char **argv)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct opts o;
	struct ctx c = { .o = &o, .page = page, .buf_fd = -1, .pfd = { -1, -1 },
			 .peer_fd = -1, .gt_fd = -1 };
	sigset_t old;
	bool completed;

	parse_args(argc, argv, &o, page);
	debug_corrupt = getenv("NVH_PIN_CORRUPT") && !strcmp(getenv("NVH_PIN_CORRUPT"), "1");
	setvbuf(stdout, NULL, _IOLBF, 0);
	c.key = stream_key(o.seed, STREAM_PATTERN);
	c.map_len = round_up(o.size, o.align_va > SZ_2M ? o.align_va : SZ_2M);
	if (guard_signal(SIGBUS) || guard_signal(SIGSEGV))
		fail("sigaction(SIGBUS/SIGSEGV): %s", strerror(errno));
	if (o.hold && block_control_signals(on_control, &old))
		fail("blocking the control signals: %s", strerror(errno));
	raise_memlock();
	c.exp = malloc(CHUNK);
	c.got = malloc(CHUNK);
	if (!c.exp || !c.got)
		fail("malloc: %s", strerror(errno));
	completed = !fail_msg[0] && open_buffer(&c) == 0 && map_buffer(&c) == 0 &&
		    fill_buffer(&c) == 0 && run_method(&c) == 0;
	if (completed && o.hold) {
		/* Nothing to hold after a refused pin: report and exit. */
		if (!R.supported || (R.pin.valid && !R.pin.ok))
			fprintf(stderr, "nvh-pin: --hold: the pin was not granted, not holding\n");
		else
			hold(&c, &old);
	}
	release_pin(&c);
	cleanup(&c);
	if (!completed)
		fprintf(stderr, "nvh-pin: %s\n", fail_msg);
	print_final(&c, completed);
	free(c.exp);
	free(c.got);
	return completed ? 0 : 1;
}
