/*
 * nvh-kvm - a minimal VMM on /dev/kvm whose guest memory is a DAX mapping.
 *
 * Gives a KVM guest one memory slot backed by the buffer under test (a
 * device-dax character device, an fsdax file on a -o dax mount, or as
 * controls anonymous memory and a page-cache file), runs a few instructions
 * of 32-bit guest code that write or read that slot, and reports what
 * happened: every KVM_RUN and its exit, the VM's leaf mapping counts per
 * level (pages_4k/2m/1g from the binary stats), the dirty log, and whether
 * what the guest stored is what the VMM sees through its own mapping (and
 * the other way round).
 *
 * Why: the seed series converts KVM's page lookup to pfn_t so that a
 * guest's memory can be a DAX mapping (virt/kvm/kvm_main.c hva_to_pfn());
 * whether the guest gets huge mappings is decided by arch/x86/kvm/mmu/mmu.c
 * host_pfn_mapping_level() / kvm_mmu_hugepage_adjust(), and dirty logging
 * forces 4K mappings.  Removing the device under a running or halted guest
 * (--case hold, loop) must end in an error from KVM_RUN, not in a guest
 * that keeps reaching the old pfns.
 *
 * The program observes: every line on stdout is one JSON object (the events
 * of hold and loop, then the final report); the caller judges.  Diagnostics
 * go to stderr.  Exit status: 0 every step ran (a failed KVM_RUN is an
 * observation), 1 a setup step failed ("completed": false; the report is
 * still printed), 2 usage error (one line on stderr, no JSON).
 *
 * Build: gcc -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread \
 *            -o nvh-kvm nvh-kvm.c
 * See README.md next to this file for the CLI, the signals and the JSON fields.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>

#define NVH_PROG "nvh-kvm"
#include "nvh-common.h"

#ifndef NVH_KVM_DEV
#define NVH_KVM_DEV "/dev/kvm"
#endif

#define PAGE_4K		4096UL
#define CODE_SLOT	0
#define CODE_GPA	0x0UL
#define CODE_SIZE	(64UL << 10)
#define CODE_ENTRY	0x1000UL	/* the guest code is copied here; rip */
#define TEST_SLOT	1
#define SLOT_GPA	0x40000000UL	/* 1 GiB: 2 MiB (and 1 GiB) aligned */
#define MAX_SIZE	(1UL << 30)
#define TSS_ADDR	0xfffbd000UL
#define PASS_PORT	0x10		/* op 3 signals a pass with `out %al, $0x10` */
#define STALE_XOR	0x5a5a5a5aU

/* ------------------------------------------------------------- guest code */

/*
 * 32-bit protected mode, flat segments, no paging, so a linear address is a
 * guest-physical address (GPA).  Position independent: only relative jumps.
 *
 * On entry:  eax = op, edi = first GPA, ecx = number of dwords (> 0),
 *            edx = seed (odd).
 * Pattern:   the dword at GPA A holds A ^ seed.  A is 4-aligned and the seed
 *            odd, so a pattern dword is never 0.
 *
 *   op 1 WRITE       store the pattern over [edi, edi + 4 * ecx), hlt.
 *   op 2 VERIFY      loads only; on hlt: esi = dwords that differ from the
 *                    pattern, ebp = GPA of the first of them (0xffffffff:
 *                    none), ebx = dwords that are 0.
 *   op 3 WRITE-LOOP  forever: store the pattern over the range, then
 *                    `out %al, $0x10` (an I/O exit: one pass done).
 *   other            hlt.
 *
 * Scratch: ops 1 and 3 keep op in esi, the start in ebx, the count in ebp;
 * after a hlt the guest halts again if entered without new registers.
 */
asm(
	"	.pushsection .rodata\n"
	"	.balign 16\n"
	"	.globl nvh_guest_start\n"
	"	.hidden nvh_guest_start\n"
	"	.globl nvh_guest_end\n"
	"	.hidden nvh_guest_end\n"
	"	.code32\n"
	"nvh_guest_start:\n"
	"	cmpl	$2, %eax\n"
	"	je	20f\n"
	"	cmpl	$1, %eax\n"
	"	je	10f\n"
	"	cmpl	$3, %eax\n"
	"	je	10f\n"
	"1:	hlt\n"				/* done, or an unknown op */
	"	jmp	1b\n"
	/* op 1 / op 3 */
	"10:	movl	%eax, %esi\n"		/* esi = op */
	"	movl	%edi, %ebx\n"		/* ebx = first GPA */
	"	movl	%ecx, %ebp\n"		/* ebp = dwords */
	"11:	movl	%ebx, %edi\n"		/* a pass */
	"	movl	%ebp, %ecx\n"
	"12:	movl	%edi, %eax\n"
	"	xorl	%edx, %eax\n"
	"	movl	%eax, (%edi)\n"		/* [A] = A ^ seed */
	"	addl	$4, %edi\n"
	"	decl	%ecx\n"
	"	jnz	12b\n"
	"	cmpl	$1, %esi\n"
	"	je	1b\n"			/* WRITE: hlt */
	"	outb	%al, $0x10\n"		/* WRITE-LOOP: count a pass, again */
	"	jmp	11b\n"
	/* op 2 */
	"20:	xorl	%esi, %esi\n"		/* esi = mismatches */
	"	movl	$0xffffffff, %ebp\n"	/* ebp = first mismatching GPA */
	"	xorl	%ebx, %ebx\n"		/* ebx = zero dwords */
	"21:	movl	(%edi), %eax\n"
	"	testl	%eax, %eax\n"
	"	jnz	22f\n"
	"	incl	%ebx\n"
	"22:	xorl	%edi, %eax\n"
	"	cmpl	%edx, %eax\n"		/* [A] ^ A == seed? */
	"	je	23f\n"
	"	incl	%esi\n"
	"	cmpl	$0xffffffff, %ebp\n"
	"	jne	23f\n"
	"	movl	%edi, %ebp\n"
	"23:	addl	$4, %edi\n"
	"	decl	%ecx\n"
	"	jnz	21b\n"
	"	jmp	1b\n"
	"nvh_guest_end:\n"
	"	.code64\n"
	"	.popsection\n");

extern const unsigned char nvh_guest_start[] __attribute__((visibility("hidden")));
extern const unsigned char nvh_guest_end[] __attribute__((visibility("hidden")));

enum { OP_WRITE = 1, OP_VERIFY = 2, OP_WRITE_LOOP = 3 };

/* ------------------------------------------------------------------ options */

enum kcase { C_GUEST_WRITES, C_GUEST_WRITES_PREFAULTED, C_HOST_WRITES, C_DIRTY_LOG,
	     C_HOLD, C_LOOP, C_COUNT };
static const char *const case_name[] = {
	"guest-writes", "guest-writes-prefaulted", "host-writes", "dirty-log", "hold", "loop",
};

struct opts {
	enum buf_kind kind;
	const char *buffer;	/* as given, for the report */
	const char *path;	/* file/devdax path, else NULL */
	int kcase;		/* enum kcase, -1 unset */
	size_t size;
	uint64_t seed;
	uint32_t seed32;	/* the guest's seed: (uint32_t)seed | 1 */
	uint64_t dirty_pages;
	bool next_read;
	bool hole;
	size_t hole_off, hole_size;
};

/* ------------------------------------------------------------------ report */

/* One guest run: KVM_SET_REGS, then KVM_RUN until it returns something. */
struct run_rec {
	int op;
	uint64_t offset;	/* slot offset of the range */
	uint64_t bytes;
	bool ok;		/* KVM_RUN returned 0 */
	int err;		/* its errno when not, 0 for none */
	bool sigbus;		/* a SIGBUS (e.g. KVM's hwpoison signal) ended it */
	int exit;		/* kvm_run->exit_reason, -1: the ioctl failed */
	bool good;
	unsigned int eintr;	/* KVM_RUN retried after EINTR */
	long long ns;
	/* what an exit other than hlt left in kvm_run */
	bool has_rip;
	uint64_t rip;
	union {
		struct { uint16_t port; uint8_t dir, size; uint32_t count; } io;
		struct { uint64_t phys; uint32_t len; uint8_t is_write; } mmio;
		struct { uint32_t suberror, ndata; uint64_t data[16]; } internal;
		struct { uint64_t reason; uint32_t cpu; } fail_entry;
		struct { uint32_t exception, error_code; } ex;
		uint64_t hw_reason;
	} d;
	/* op 2 after hlt: esi, ebp, ebx */
	bool has_result;
	uint32_t mismatches, first_gpa, zeroes;
};

/* The VMM's own reads of the slot through its mapping. */
struct host_check {
	bool valid;
	const char *skipped;
	uint64_t offset, bytes;		/* the range checked */
	uint64_t checked;		/* bytes compared before a fault */
	uint64_t mismatches;
	long long first;		/* slot offset, -1 none */
	bool sigbus;
	long long fault_offset;
};

/* What op 2 counted, over one or more runs. */
struct guest_check {
	bool valid;
	const char *skipped;
	uint64_t mismatches, zeroes;
	long long first;		/* slot offset, -1 none */
	bool hole;
	bool zeroes_in_hole, rest_exact;
};

static const char skipped_run[] = "the guest run failed";

static struct {
	int api_version;		/* -1 unknown */
	int tss_err;			/* -1 not tried */
	const char *thp;		/* anon: "madvise ok" or an errno name */
	long long file_size;		/* -1: not a file buffer */
	uintptr_t map_addr;
	struct run_rec *runs;
	size_t nruns, cap;
	struct {
		int fd;
		char error[96];
		off_t off[3];		/* file offset of each value, -1 missing */
	} stats;
	bool have_stats;
	uint64_t st[3];
	bool st_have[3];
	struct host_check hc;
	struct guest_check gc;
	struct {
		bool valid;
		const char *skipped;
		const char *error;
		uint64_t written, reported;
		bool exact;
		long long first_unexpected;
	} dirty;
	struct {
		bool valid;
		uint64_t passes;
		const char *stopped_by;
		struct run_rec last;
		long long ns;
	} loop;
	struct {
		bool valid;
		unsigned long requests;
		const char *signal;
	} hold;
} R = { .api_version = -1, .tss_err = -1, .file_size = -1, .stats = { .fd = -1 } };

static void add_run(const struct run_rec *r)
{
	if (R.nruns == R.cap) {
		size_t cap = R.cap ? 2 * R.cap : 16;
		struct run_rec *p = realloc(R.runs, cap * sizeof(*p));

		if (!p) {
			fprintf(stderr, "nvh-kvm: out of memory, a run record is lost\n");
			return;
		}
		R.runs = p;
		R.cap = cap;
	}
	R.runs[R.nruns++] = *r;
}

/* ---------------------------------------------------------------- context */

struct ctx {
	const struct opts *o;
	int kvm, vm, vcpu;
	struct kvm_run *run;
	size_t run_size;
	unsigned char *code;
	int buf_fd;
	unsigned char *map;
	bool vcpu_sigmask;	/* hold, loop: KVM_RUN unblocks the stop signals */
	sigset_t blocked, run_mask;
};

static uint32_t pattern_at(uint64_t off, uint32_t seed)
{
	return (uint32_t)(SLOT_GPA + off) ^ seed;
}

static uint32_t stale_seed(const struct opts *o)
{
	return (o->seed32 ^ STALE_XOR) | 1;
}

static long long fault_offset(const struct ctx *c)
{
	uintptr_t a = (uintptr_t)fault_addr, m = (uintptr_t)c->map;

	return a >= m && a < m + c->o->size ? (long long)(a - m) : -1;
}

/* -------------------------------------------------- control signals */

static volatile sig_atomic_t run_requests, stop_requested;

static void on_control(int sig)
{
	if (sig == SIGUSR1)
		run_requests++;
	else if (!stop_requested)
		stop_requested = sig;
}

/*
 * hold and loop: the control signals of nvh-common.h, blocked from the start.
 * hold takes them in sigsuspend(); KVM_RUN alone unblocks the stop signals
 * (KVM_SET_SIGNAL_MASK), so a stop ends a guest run that does not come back
 * (a loop, a fault KVM retries forever), and one that arrives just before
 * KVM_RUN still makes it return EINTR at once.
 */
static int setup_control_signals(struct ctx *c)
{
	sigset_t old;

	if (block_control_signals(on_control, &old))
		return -1;
	c->blocked = old;
	c->run_mask = old;
	for (size_t i = 0; i < N_CONTROL; i++) {
		sigaddset(&c->blocked, control_signals[i]);
		sigdelset(&c->run_mask, control_signals[i]);
	}
	sigaddset(&c->run_mask, SIGUSR1);	/* taken between runs only */
	return 0;
}

/* After an EINTR: let the pending stop signals reach on_control(). */
static void poll_stop_signals(const struct ctx *c)
{
	sigprocmask(SIG_SETMASK, &c->run_mask, NULL);
	sigprocmask(SIG_SETMASK, &c->blocked, NULL);
}

/* ------------------------------------------------------------------ setup */

static int open_kvm(struct ctx *c)
{
	int r;

	c->kvm = open(NVH_KVM_DEV, O_RDWR | O_CLOEXEC);
	if (c->kvm < 0)
		return fail("open " NVH_KVM_DEV ": %s", errno_name(errno));
	r = ioctl(c->kvm, KVM_GET_API_VERSION, 0);
	if (r < 0)
		return fail("KVM_GET_API_VERSION: %s", errno_name(errno));
	R.api_version = r;
	if (r != KVM_API_VERSION)
		return fail("KVM_GET_API_VERSION: %d, expected %d", r, KVM_API_VERSION);
	c->vm = ioctl(c->kvm, KVM_CREATE_VM, 0);
	if (c->vm < 0)
		return fail("KVM_CREATE_VM: %s", errno_name(errno));
	/* VMX needs three pages for its real-mode TSS; SVM ignores it. */
	R.tss_err = ioctl(c->vm, KVM_SET_TSS_ADDR, TSS_ADDR) ? errno : 0;
	return 0;
}

/*
 * The VM's binary statistics (KVM_GET_STATS_FD): a header, an array of
 * descriptors of sizeof(struct kvm_stats_desc) + name_size bytes each, and
 * the data, u64 values at data_offset + desc.offset.  pages_4k/2m/1g count
 * the VM's present leaf SPTEs per level (arch/x86/kvm/x86.c).  A failure
 * here is reported in "stats", not a setup failure.
 */
static const char *const stat_name[3] = { "pages_4k", "pages_2m", "pages_1g" };

static void stats_open(struct ctx *c)
{
	struct kvm_stats_header h;
	size_t dsize, len;
	unsigned char *descs;
	ssize_t n;
	int fd;

	for (int i = 0; i < 3; i++)
		R.stats.off[i] = -1;
	fd = ioctl(c->vm, KVM_GET_STATS_FD, NULL);
	if (fd < 0) {
		snprintf(R.stats.error, sizeof(R.stats.error), "KVM_GET_STATS_FD: %s",
			 errno_name(errno));
		return;
	}
	R.stats.fd = fd;
	n = pread(fd, &h, sizeof(h), 0);
	if (n != (ssize_t)sizeof(h)) {
		snprintf(R.stats.error, sizeof(R.stats.error), "reading the stats header: %s",
			 n < 0 ? errno_name(errno) : "short read");
		return;
	}
	dsize = sizeof(struct kvm_stats_desc) + h.name_size;
	len = dsize * h.num_desc;
	descs = malloc(len ? len : 1);
	if (!descs) {
		snprintf(R.stats.error, sizeof(R.stats.error), "malloc: ENOMEM");
		return;
	}
	n = pread(fd, descs, len, h.desc_offset);
	if (n != (ssize_t)len) {
		snprintf(R.stats.error, sizeof(R.stats.error), "reading the stats descriptors: %s",
			 n < 0 ? errno_name(errno) : "short read");
		free(descs);
		return;
	}
	for (uint32_t i = 0; i < h.num_desc; i++) {
		struct kvm_stats_desc *d = (struct kvm_stats_desc *)(descs + i * dsize);

		if (!h.name_size || d->size < 1)
			continue;
		d->name[h.name_size - 1] = '\0';
		for (int k = 0; k < 3; k++)
			if (!strcmp(d->name, stat_name[k]))
				R.stats.off[k] = (off_t)h.data_offset + d->offset;
	}
	free(descs);
}

/* The current values into R.st (the last reading is the report's "stats"). */
static void stats_read(void)
{
	R.have_stats = true;
	for (int k = 0; k < 3; k++) {
		R.st_have[k] = R.stats.fd >= 0 && R.stats.off[k] >= 0 &&
			       pread(R.stats.fd, &R.st[k], 8, R.stats.off[k]) == 8;
	}
}

static int create_vcpu(struct ctx *c)
{
	int size;

	c->vcpu = ioctl(c->vm, KVM_CREATE_VCPU, 0);
	if (c->vcpu < 0)
		return fail("KVM_CREATE_VCPU: %s", errno_name(errno));
	size = ioctl(c->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(struct kvm_run))
		return fail("KVM_GET_VCPU_MMAP_SIZE: %s", size < 0 ? errno_name(errno) : "too small");
	c->run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, c->vcpu, 0);
	if (c->run == MAP_FAILED) {
		c->run = NULL;
		return fail("mmap of the kvm_run area: %s", errno_name(errno));
	}
	c->run_size = (size_t)size;
	return 0;
}

static int set_slot(struct ctx *c, uint32_t slot, uint32_t flags, uint64_t gpa,
		    uint64_t size, void *hva)
{
	struct kvm_userspace_memory_region m = {
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};

	if (ioctl(c->vm, KVM_SET_USER_MEMORY_REGION, &m))
		return fail("KVM_SET_USER_MEMORY_REGION slot %u (%s): %s", slot,
			    slot == CODE_SLOT ? "code" : c->o->buffer, errno_name(errno));
	return 0;
}

static int code_slot(struct ctx *c)
{
	size_t len = (size_t)(nvh_guest_end - nvh_guest_start);
	void *p;

	p = mmap(NULL, CODE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return fail("mmap of the code slot: %s", errno_name(errno));
	c->code = p;
	madvise(p, CODE_SIZE, MADV_NOHUGEPAGE);	/* best effort */
	memcpy(c->code + CODE_ENTRY, nvh_guest_start, len);
	return set_slot(c, CODE_SLOT, 0, CODE_GPA, CODE_SIZE, c->code);
}

static int open_buffer(struct ctx *c)
{
	const struct opts *o = c->o;
	struct stat st;

	switch (o->kind) {
	case BUF_ANON:
		c->buf_fd = -1;
		return 0;
	case BUF_FILE:
		c->buf_fd = open(o->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (c->buf_fd < 0)
			return fail("open %s: %s", o->path, errno_name(errno));
		if (fstat(c->buf_fd, &st))
			return fail("fstat %s: %s", o->path, errno_name(errno));
		if (!S_ISREG(st.st_mode))
			return fail("%s is not a regular file", o->path);
		if (st.st_size < (off_t)o->size && extend_file(c->buf_fd, (off_t)o->size))
			return fail("extending %s to %zu bytes (fallocate/ftruncate): %s",
				    o->path, o->size, errno_name(errno));
		R.file_size = st.st_size > (off_t)o->size ? st.st_size : (off_t)o->size;
		return 0;
	case BUF_DEVDAX:
		c->buf_fd = open(o->path, O_RDWR | O_CLOEXEC);
		if (c->buf_fd < 0)
			return fail("open %s: %s", o->path, errno_name(errno));
		return 0;
	case BUF_SHMEM:		/* refused by parse_buffer() */
		break;
	}
	return fail("unknown buffer kind");
}

static int map_buffer(struct ctx *c)
{
	const struct opts *o = c->o;
	int flags = c->buf_fd < 0 ? MAP_PRIVATE | MAP_ANONYMOUS : MAP_SHARED;
	void *p = map_aligned(c->buf_fd, o->size, PROT_READ | PROT_WRITE, flags, SZ_2M);

	if (p == MAP_FAILED)
		return fail("mmap %zu bytes of %s: %s", o->size, o->buffer, errno_name(errno));
	c->map = p;
	R.map_addr = (uintptr_t)p;
	if (o->kind == BUF_ANON)
		R.thp = madvise(p, o->size, MADV_HUGEPAGE) ? errno_name(errno) : "madvise ok";
	return set_slot(c, TEST_SLOT, o->kcase == C_DIRTY_LOG ? KVM_MEM_LOG_DIRTY_PAGES : 0,
			SLOT_GPA, o->size, p);
}

/* 32-bit protected mode, flat 4 GiB code and data segments, no paging. */
static int setup_cpu(struct ctx *c)
{
	struct kvm_segment cs = {
		.base = 0, .limit = 0xffffffff, .selector = 8, .type = 11,
		.present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
	};
	struct kvm_segment ds = {
		.base = 0, .limit = 0xffffffff, .selector = 16, .type = 3,
		.present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
	};
	struct kvm_sregs sr;

	if (ioctl(c->vcpu, KVM_GET_SREGS, &sr))
		return fail("KVM_GET_SREGS: %s", errno_name(errno));
	sr.cr0 |= 1;	/* PE */
	sr.cs = cs;
	sr.ds = sr.es = sr.fs = sr.gs = sr.ss = ds;
	if (ioctl(c->vcpu, KVM_SET_SREGS, &sr))
		return fail("KVM_SET_SREGS: %s", errno_name(errno));
	return 0;
}

/* hold, loop: KVM_RUN runs with the stop signals unblocked (see setup_control_signals()). */
static int set_vcpu_sigmask(struct ctx *c)
{
	unsigned char buf[sizeof(struct kvm_signal_mask) + 8] __attribute__((aligned(8)));
	struct kvm_signal_mask *m = (struct kvm_signal_mask *)buf;

	m->len = 8;	/* the kernel's sigset_t */
	memcpy(m->sigset, &c->run_mask, 8);
	if (ioctl(c->vcpu, KVM_SET_SIGNAL_MASK, m))
		return fail("KVM_SET_SIGNAL_MASK: %s", errno_name(errno));
	c->vcpu_sigmask = true;
	return 0;
}

static void cleanup(struct ctx *c)
{
	if (c->run)
		munmap(c->run, c->run_size);
	if (c->vcpu >= 0)
		close(c->vcpu);
	if (R.stats.fd >= 0)
		close(R.stats.fd);
	if (c->vm >= 0)
		close(c->vm);
	if (c->kvm >= 0)
		close(c->kvm);
	if (c->map)
		munmap(c->map, c->o->size);
	if (c->code)
		munmap(c->code, CODE_SIZE);
	if (c->buf_fd >= 0)
		close(c->buf_fd);
}

/* ------------------------------------------------------------- guest runs */

struct kvm_call {
	int fd;
	int ret, err;
};

static void do_kvm_run(void *arg)
{
	struct kvm_call *k = arg;

	k->ret = ioctl(k->fd, KVM_RUN, 0);
	k->err = k->ret < 0 ? errno : 0;
}

static bool is_pass(const struct kvm_run *run)
{
	return run->exit_reason == KVM_EXIT_IO && run->io.port == PASS_PORT &&
	       run->io.direction == KVM_EXIT_IO_OUT;
}

/*
 * KVM_RUN until it returns something other than an EINTR to retry (EINTR
 * ends the run when a stop was requested).  The call runs under the SIGBUS
 * guard: KVM answers a hwpoisoned pfn with a SIGBUS to the VMM
 * (kvm_send_hwpoison_signal()) and retries the fault, so a retried KVM_RUN
 * would take it again; it ends the run instead.
 */
static void vcpu_run(struct ctx *c, struct run_rec *r)
{
	struct kvm_call k = { .fd = c->vcpu };
	struct kvm_run *run = c->run;
	long long t0 = now_ns();
	struct kvm_regs regs;

	r->exit = -1;
	r->ok = false;
	r->err = 0;
	r->sigbus = false;
	r->has_rip = false;
	for (;;) {
		if (!run_guarded(do_kvm_run, &k)) {
			r->sigbus = fault_signo == SIGBUS;
			r->err = 0;
			break;
		}
		if (k.ret == 0) {
			r->ok = true;
			break;
		}
		r->err = k.err;
		if (k.err != EINTR)
			break;
		if (c->vcpu_sigmask)
			poll_stop_signals(c);
		if (stop_requested)
			break;
		r->eintr++;
	}
	r->ns += now_ns() - t0;
	if (!r->ok)
		return;
	r->exit = (int)run->exit_reason;
	switch (run->exit_reason) {
	case KVM_EXIT_HLT:
		return;
	case KVM_EXIT_IO:
		r->d.io.port = run->io.port;
		r->d.io.dir = run->io.direction;
		r->d.io.size = run->io.size;
		r->d.io.count = run->io.count;
		if (is_pass(run))
			return;	/* the loop's pass: no registers needed */
		break;
	case KVM_EXIT_MMIO:
		r->d.mmio.phys = run->mmio.phys_addr;
		r->d.mmio.len = run->mmio.len;
		r->d.mmio.is_write = run->mmio.is_write;
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		r->d.internal.suberror = run->internal.suberror;
		r->d.internal.ndata = run->internal.ndata > 16 ? 16 : run->internal.ndata;
		memcpy(r->d.internal.data, run->internal.data,
		       r->d.internal.ndata * sizeof(r->d.internal.data[0]));
		break;
	case KVM_EXIT_FAIL_ENTRY:
		r->d.fail_entry.reason = run->fail_entry.hardware_entry_failure_reason;
		r->d.fail_entry.cpu = run->fail_entry.cpu;
		break;
	case KVM_EXIT_EXCEPTION:
		r->d.ex.exception = run->ex.exception;
		r->d.ex.error_code = run->ex.error_code;
		break;
	case KVM_EXIT_UNKNOWN:
		r->d.hw_reason = run->hw.hardware_exit_reason;
		break;
	}
	if (ioctl(c->vcpu, KVM_GET_REGS, &regs) == 0) {
		r->has_rip = true;
		r->rip = regs.rip;
	}
}

/* op 1 or 2 over [off, off + bytes) of the slot, recorded in "runs". */
static int guest_op(struct ctx *c, int op, uint64_t off, uint64_t bytes, struct run_rec *r)
{
	struct kvm_regs regs = {
		.rax = (uint64_t)op,
		.rdi = SLOT_GPA + off,
		.rcx = bytes / 4,
		.rdx = c->o->seed32,
		.rip = CODE_GPA + CODE_ENTRY,
		.rflags = 2,
	};

	*r = (struct run_rec){ .op = op, .offset = off, .bytes = bytes, .exit = -1 };
	if (ioctl(c->vcpu, KVM_SET_REGS, &regs))
		return fail("KVM_SET_REGS: %s", errno_name(errno));
	vcpu_run(c, r);
	r->good = r->ok && r->exit == KVM_EXIT_HLT;
	if (r->good && op == OP_VERIFY) {
		if (ioctl(c->vcpu, KVM_GET_REGS, &regs)) {
			add_run(r);
			return fail("KVM_GET_REGS after the guest's hlt: %s", errno_name(errno));
		}
		r->has_result = true;
		r->mismatches = (uint32_t)regs.rsi;
		r->first_gpa = (uint32_t)regs.rbp;
		r->zeroes = (uint32_t)regs.rbx;
	}
	add_run(r);
	return 0;
}

/* Fold one op 2 run into a guest_check (ranges in ascending order). */
static void gc_add(struct guest_check *g, const struct run_rec *r)
{
	g->valid = true;
	if (!r->good) {
		g->skipped = skipped_run;
		return;
	}
	g->mismatches += r->mismatches;
	g->zeroes += r->zeroes;
	if (g->first < 0 && r->first_gpa != 0xffffffffU)
		g->first = (long long)(r->first_gpa - SLOT_GPA);
}

/* ------------------------------------------------ the VMM's own accesses */

static volatile uint64_t host_pos;	/* progress, for a fault in the middle */

struct host_range {
	struct ctx *c;
	uint64_t off, end;
	uint32_t seed;
};

static void do_host_fill(void *arg)
{
	struct host_range *h = arg;

	for (host_pos = h->off; host_pos < h->end; host_pos += PAGE_4K) {
		uint32_t *p = (uint32_t *)(h->c->map + host_pos);

		for (uint64_t i = 0; i < PAGE_4K / 4; i++)
			p[i] = pattern_at(host_pos + 4 * i, h->seed);
	}
}

/* The pattern with seed through the VMM's mapping; a fault is a setup failure. */
static int host_fill(struct ctx *c, uint32_t seed, const char *what)
{
	struct host_range h = { c, 0, c->o->size, seed };

	if (run_guarded(do_host_fill, &h))
		return 0;
	return fail("storing the %s pattern through the VMM's mapping: %s at offset %lld",
		    what, signal_name(fault_signo), fault_offset(c));
}

static void do_host_check(void *arg)
{
	struct host_range *h = arg;
	struct host_check *hc = &R.hc;

	for (host_pos = h->off; host_pos < h->end; host_pos += PAGE_4K) {
		const uint32_t *p = (const uint32_t *)(h->c->map + host_pos);
		uint64_t bad = 0;
		long long first = -1;

		for (uint64_t i = 0; i < PAGE_4K / 4; i++) {
			if (p[i] == pattern_at(host_pos + 4 * i, h->seed))
				continue;
			if (first < 0)
				first = (long long)(host_pos + 4 * i);
			bad++;
		}
		hc->mismatches += bad;
		if (hc->first < 0)
			hc->first = first;
		hc->checked = host_pos + PAGE_4K - h->off;
		/* In memory per page: a SIGBUS leaves by siglongjmp(). */
		__asm__ __volatile__("" ::: "memory");
	}
}

/* The VMM reads [off, off + bytes) and compares with the pattern the guest stored. */
static void host_check(struct ctx *c, uint64_t off, uint64_t bytes, const struct run_rec *r)
{
	struct host_range h = { c, off, off + bytes, c->o->seed32 };

	R.hc = (struct host_check){ .valid = true, .offset = off, .bytes = bytes,
				    .first = -1, .fault_offset = -1 };
	if (!r->good) {
		R.hc.skipped = skipped_run;
		return;
	}
	if (!run_guarded(do_host_check, &h)) {
		R.hc.sigbus = fault_signo == SIGBUS;
		R.hc.fault_offset = fault_offset(c);
	}
}

/* ---------------------------------------------------------------- output */

static const char *exit_name(int e)
{
	static char other[24];

	switch (e) {
	case -1: return NULL;
	case KVM_EXIT_HLT: return "hlt";
	case KVM_EXIT_IO: return "io";
	case KVM_EXIT_MMIO: return "mmio";
	case KVM_EXIT_SHUTDOWN: return "shutdown";
	case KVM_EXIT_INTERNAL_ERROR: return "internal_error";
	case KVM_EXIT_FAIL_ENTRY: return "fail_entry";
	}
	snprintf(other, sizeof(other), "exit_%d", e);
	return other;
}

static void print_detail(const struct run_rec *r)
{
	if (r->exit < 0 || r->exit == KVM_EXIT_HLT) {
		knull("detail");
		return;
	}
	jkey("detail");
	jbegin();
	if (r->has_rip)
		kuint("rip", r->rip);
	else
		knull("rip");
	switch (r->exit) {
	case KVM_EXIT_IO:
		kint("port", r->d.io.port);
		kstr("direction", r->d.io.dir == KVM_EXIT_IO_OUT ? "out" : "in");
		kint("size", r->d.io.size);
		kint("count", r->d.io.count);
		break;
	case KVM_EXIT_MMIO:
		kuint("phys_addr", r->d.mmio.phys);
		kint("len", r->d.mmio.len);
		kbool("is_write", r->d.mmio.is_write);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		kint("suberror", r->d.internal.suberror);
		jkey("data");
		jabegin();
		for (uint32_t i = 0; i < r->d.internal.ndata; i++) {
			jsep();
			printf("%" PRIu64, (uint64_t)r->d.internal.data[i]);
		}
		jaend();
		break;
	case KVM_EXIT_FAIL_ENTRY:
		kuint("hardware_entry_failure_reason", r->d.fail_entry.reason);
		kint("cpu", r->d.fail_entry.cpu);
		break;
	case KVM_EXIT_EXCEPTION:
		kint("exception", r->d.ex.exception);
		kint("error_code", r->d.ex.error_code);
		break;
	case KVM_EXIT_UNKNOWN:
		kuint("hardware_exit_reason", r->d.hw_reason);
		break;
	}
	jend();
}

/* A run record, as a value (the caller wrote the key or the separator). */
static void print_run(const struct run_rec *r)
{
	jbegin();
	kint("op", r->op);
	kuint("offset", r->offset);
	kuint("bytes", r->bytes);
	jkey("kvm_run");
	jbegin();
	kbool("ok", r->ok);
	kerr("errno", r->err);
	kbool("sigbus", r->sigbus);
	kint("eintr_retries", r->eintr);
	jend();
	kstr("exit", exit_name(r->exit));
	print_detail(r);
	kbool("good", r->good);
	kms("elapsed_ms", r->ns);
	jend();
}

static void krun(const char *k, const struct run_rec *r)
{
	jkey(k);
	print_run(r);
}

static void print_stats(void)
{
	if (!R.have_stats) {
		knull("stats");
		return;
	}
	jkey("stats");
	jbegin();
	for (int k = 0; k < 3; k++)
		if (R.st_have[k])
			kuint(stat_name[k], R.st[k]);
		else
			knull(stat_name[k]);
	if (R.stats.error[0])
		kstr("error", R.stats.error);
	jend();
}

static void print_host_check(void)
{
	const struct host_check *h = &R.hc;

	if (!h->valid) {
		knull("host_check");
		return;
	}
	jkey("host_check");
	jbegin();
	kuint("offset", h->offset);
	kuint("bytes", h->bytes);
	if (h->skipped) {
		kstr("skipped", h->skipped);
	} else {
		kuint("checked", h->checked);
		kuint("mismatches", h->mismatches);
		koff("first_mismatch_offset", h->first);
		kbool("sigbus", h->sigbus);
		koff("fault_offset", h->fault_offset);
	}
	jend();
}

static void print_guest_check(const struct guest_check *g, const struct opts *o)
{
	if (!g->valid) {
		knull("guest_check");
		return;
	}
	jkey("guest_check");
	jbegin();
	if (g->skipped) {
		kstr("skipped", g->skipped);
	} else {
		kuint("mismatches", g->mismatches);
		kuint("zeroes", g->zeroes);
		koff("first_mismatch_offset", g->first);
	}
	if (g->hole) {
		jkey("hole");
		jbegin();
		kuint("offset", o->hole_off);
		kuint("size", o->hole_size);
		if (g->skipped) {
			knull("zeroes_in_hole");
			knull("rest_exact");
		} else {
			kbool("zeroes_in_hole", g->zeroes_in_hole);
			kbool("rest_exact", g->rest_exact);
		}
		jend();
	}
	jend();
}

/* Only for a case that has it (R.dirty.valid). */
static void print_dirty(void)
{
	jkey("dirty");
	jbegin();
	kuint("written", R.dirty.written);
	if (R.dirty.skipped) {
		kstr("skipped", R.dirty.skipped);
	} else if (R.dirty.error) {
		kstr("error", R.dirty.error);
	} else {
		kuint("reported", R.dirty.reported);
		kbool("exact", R.dirty.exact);
		koff("first_unexpected", R.dirty.first_unexpected);
	}
	jend();
}

/* Only for a case that has it (R.loop.valid). */
static void print_loop(void)
{
	jkey("loop");
	jbegin();
	kuint("passes", R.loop.passes);
	kstr("stopped_by", R.loop.stopped_by);
	krun("run", &R.loop.last);
	kms("elapsed_ms", R.loop.ns);
	jend();
}

static void print_final(const struct ctx *c, bool completed)
{
	const struct opts *o = c->o;

	jbegin();
	kstr("program", "nvh-kvm");
	kstr("case", case_name[o->kcase]);
	kstr("buffer", o->buffer);
	kstr("buffer_kind", kind_name[o->kind]);
	kstr("path", o->path);
	kuint("size", o->size);
	kuint("slot_gpa", SLOT_GPA);
	kuint("seed", o->seed);
	kuint("seed32", o->seed32);
	koff("file_size", R.file_size);
	kaddr("map_addr", R.map_addr);
	kbool("completed", completed);
	kstr("error", fail_msg[0] ? fail_msg : NULL);
	jkey("kvm");
	jbegin();
	if (R.api_version >= 0)
		kint("api_version", R.api_version);
	else
		knull("api_version");
	if (R.tss_err < 0)
		knull("tss");
	else
		kstr("tss", R.tss_err ? errno_name(R.tss_err) : "ok");
	jend();
	kstr("thp", R.thp);
	jkey("runs");
	jabegin();
	for (size_t i = 0; i < R.nruns; i++) {
		jsep();
		print_run(&R.runs[i]);
	}
	jaend();
	print_stats();
	/* Only the case's own checks are there. */
	if (R.hc.valid)
		print_host_check();
	if (R.gc.valid)
		print_guest_check(&R.gc, o);
	if (R.dirty.valid)
		print_dirty();
	if (R.loop.valid)
		print_loop();
	if (R.hold.valid) {
		jkey("hold");
		jbegin();
		kuint("requests", R.hold.requests);
		kstr("signal", R.hold.signal);
		jend();
	}
	kint("sigbus_count", (long long)__atomic_load_n(&sigbus_count, __ATOMIC_RELAXED));
	jend();
	line_end();
}

/* ------------------------------------------------------------------ cases */

/* guest-writes, guest-writes-prefaulted, hold: op 1 over the slot, stats, host_check. */
static int case_guest_writes(struct ctx *c, bool prefault, struct run_rec *r)
{
	if (prefault && host_fill(c, stale_seed(c->o), "stale"))
		return -1;
	if (guest_op(c, OP_WRITE, 0, c->o->size, r))
		return -1;
	stats_read();
	host_check(c, 0, c->o->size, r);
	return 0;
}

static int case_host_writes(struct ctx *c)
{
	struct run_rec r;

	if (host_fill(c, c->o->seed32, "guest's"))
		return -1;
	if (guest_op(c, OP_VERIFY, 0, c->o->size, &r))
		return -1;
	stats_read();
	R.gc = (struct guest_check){ .first = -1 };
	gc_add(&R.gc, &r);
	return 0;
}

static int case_dirty_log(struct ctx *c)
{
	uint64_t npages = c->o->size / PAGE_4K, n = c->o->dirty_pages;
	size_t words = (size_t)((npages + 63) / 64);
	struct kvm_dirty_log log = { .slot = TEST_SLOT };
	uint64_t *bm;
	struct run_rec r;

	if (guest_op(c, OP_WRITE, 0, n * PAGE_4K, &r))
		return -1;
	stats_read();
	R.dirty.valid = true;
	R.dirty.written = n;
	R.dirty.first_unexpected = -1;
	host_check(c, 0, n * PAGE_4K, &r);
	if (!r.good) {
		R.dirty.skipped = skipped_run;
		return 0;
	}
	bm = calloc(words, sizeof(*bm));
	if (!bm)
		return fail("malloc of the dirty bitmap: %s", errno_name(errno));
	log.dirty_bitmap = bm;
	if (ioctl(c->vm, KVM_GET_DIRTY_LOG, &log)) {
		R.dirty.error = "KVM_GET_DIRTY_LOG failed";
		free(bm);
		return fail("KVM_GET_DIRTY_LOG: %s", errno_name(errno));
	}
	R.dirty.exact = true;
	for (uint64_t p = 0; p < npages; p++) {
		bool set = bm[p / 64] >> (p % 64) & 1;

		R.dirty.reported += set;
		if (set != (p < n)) {
			R.dirty.exact = false;
			if (R.dirty.first_unexpected < 0)
				R.dirty.first_unexpected = (long long)p;
		}
	}
	free(bm);
	return 0;
}

/* hold, SIGUSR1: one more guest pass; the VMM does not touch its mapping. */
static int hold_run(struct ctx *c, unsigned long n)
{
	const struct opts *o = c->o;
	struct run_rec rs[3];
	struct guest_check g = { .first = -1 };
	int nr = 0, sum;

	if (!o->next_read) {
		if (guest_op(c, OP_WRITE, 0, o->size, &rs[nr++]))
			return -1;
	} else if (!o->hole) {
		if (guest_op(c, OP_VERIFY, 0, o->size, &rs[nr]))
			return -1;
		gc_add(&g, &rs[nr++]);
	} else {
		uint64_t hend = o->hole_off + o->hole_size;
		bool rest = true;

		g.hole = true;
		if (o->hole_off) {
			if (guest_op(c, OP_VERIFY, 0, o->hole_off, &rs[nr]))
				return -1;
			gc_add(&g, &rs[nr]);
			rest = rs[nr].good && rs[nr].mismatches == 0;
			nr++;
		}
		if (guest_op(c, OP_VERIFY, o->hole_off, o->hole_size, &rs[nr]))
			return -1;
		gc_add(&g, &rs[nr]);
		g.zeroes_in_hole = rs[nr].good && rs[nr].zeroes == o->hole_size / 4;
		nr++;
		if (hend < o->size) {
			if (guest_op(c, OP_VERIFY, hend, o->size - hend, &rs[nr]))
				return -1;
			gc_add(&g, &rs[nr]);
			rest = rest && rs[nr].good && rs[nr].mismatches == 0;
			nr++;
		}
		g.rest_exact = rest;
	}
	stats_read();
	jbegin();
	kstr("event", "ran");
	kuint("n", n);
	kstr("next", o->next_read ? "read" : "write");
	/* "run" sums the event up: its first failed run, else its last. */
	for (sum = 0; sum < nr - 1 && rs[sum].good; sum++)
		;
	krun("run", &rs[sum]);
	jkey("runs");
	jabegin();
	for (int i = 0; i < nr; i++) {
		jsep();
		print_run(&rs[i]);
	}
	jaend();
	print_guest_check(&g, o);
	print_stats();
	jend();
	line_end();
	return 0;
}

static int case_hold(struct ctx *c)
{
	sigset_t wait_mask = c->blocked;
	unsigned long n = 0;
	struct run_rec r;

	if (set_vcpu_sigmask(c) || case_guest_writes(c, false, &r))
		return -1;
	for (size_t i = 0; i < N_CONTROL; i++)
		sigdelset(&wait_mask, control_signals[i]);
	R.hold.valid = true;
	/* From here on only the guest touches the slot: the device may go away. */
	jbegin();
	kstr("event", "ready");
	kint("pid", (long long)getpid());
	krun("run", &r);
	print_stats();
	print_host_check();
	jend();
	line_end();
	for (;;) {
		while (!run_requests && !stop_requested)
			sigsuspend(&wait_mask);
		for (; run_requests && !stop_requested; run_requests--) {
			R.hold.requests = ++n;
			if (hold_run(c, n))
				return -1;
		}
		if (stop_requested)
			break;
	}
	R.hold.signal = signal_name(stop_requested);
	return 0;
}

static int case_loop(struct ctx *c)
{
	struct kvm_regs regs = {
		.rax = OP_WRITE_LOOP,
		.rdi = SLOT_GPA,
		.rcx = c->o->size / 4,
		.rdx = c->o->seed32,
		.rip = CODE_GPA + CODE_ENTRY,
		.rflags = 2,
	};
	const struct run_rec base = { .op = OP_WRITE_LOOP, .bytes = c->o->size, .exit = -1 };
	long long t0;

	if (set_vcpu_sigmask(c))
		return -1;
	if (ioctl(c->vcpu, KVM_SET_REGS, &regs))
		return fail("KVM_SET_REGS: %s", errno_name(errno));
	R.loop.valid = true;
	t0 = now_ns();
	for (;;) {
		struct run_rec r = base;

		vcpu_run(c, &r);
		if (r.ok && r.exit == KVM_EXIT_IO && is_pass(c->run)) {
			if (++R.loop.passes == 1) {
				stats_read();
				jbegin();
				kstr("event", "running");
				kint("pid", (long long)getpid());
				kuint("passes", 1);
				print_stats();
				jend();
				line_end();
			}
			continue;
		}
		if (!r.ok)
			R.loop.stopped_by = r.err == EINTR && stop_requested ? "signal" : "error";
		else
			R.loop.stopped_by = "exit";
		R.loop.last = r;
		break;
	}
	R.loop.ns = now_ns() - t0;
	add_run(&R.loop.last);
	stats_read();
	return 0;
}

static int run_case(struct ctx *c)
{
	struct run_rec r;

	switch (c->o->kcase) {
	case C_GUEST_WRITES: return case_guest_writes(c, false, &r);
	case C_GUEST_WRITES_PREFAULTED: return case_guest_writes(c, true, &r);
	case C_HOST_WRITES: return case_host_writes(c);
	case C_DIRTY_LOG: return case_dirty_log(c);
	case C_HOLD: return case_hold(c);
	case C_LOOP: return case_loop(c);
	}
	return fail("unknown case");
}

/* --------------------------------------------------------------- parsing */

static const char usage_text[] =
	"usage: nvh-kvm --buffer anon|file:PATH|devdax:PATH --case "
	"guest-writes|guest-writes-prefaulted|host-writes|dirty-log|hold|loop "
	"[--size B] [--seed N] [--dirty-pages N] [--next read|write] "
	"[--hole-offset B --hole-size B]";

static uint64_t parse_u64(const char *opt, const char *s)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-')
		usage_error("--%s: bad number '%s'", opt, s);
	return v;
}

struct given {
	bool dirty_pages, next, hole_off, hole_size;
};

static void check_opts(struct opts *o, const struct given *g)
{
	if (!o->buffer || o->kcase < 0)
		usage_error("--buffer and --case are required; %s", usage_text);
	if (o->size < SZ_2M || o->size % SZ_2M || o->size > MAX_SIZE)
		usage_error("--size must be a multiple of 2M from 2M to 1G, got %zu", o->size);
	if (g->dirty_pages && o->kcase != C_DIRTY_LOG)
		usage_error("--dirty-pages needs --case dirty-log");
	if (o->kcase == C_DIRTY_LOG && (!o->dirty_pages || o->dirty_pages > o->size / PAGE_4K))
		usage_error("--dirty-pages must be 1..%zu (the slot's 4K pages), got %" PRIu64,
			    o->size / PAGE_4K, o->dirty_pages);
	if (g->next && o->kcase != C_HOLD)
		usage_error("--next needs --case hold");
	if (g->hole_off != g->hole_size)
		usage_error("--hole-offset and --hole-size go together");
	if (g->hole_off && (o->kcase != C_HOLD || !o->next_read))
		usage_error("--hole-offset/--hole-size need --case hold --next read");
	if (o->hole) {
		if (!o->hole_size || o->hole_off % PAGE_4K || o->hole_size % PAGE_4K)
			usage_error("--hole-offset and --hole-size must be multiples of 4K, "
				    "the size non-zero");
		if (o->hole_off > o->size || o->hole_size > o->size - o->hole_off)
			usage_error("the hole %zu+%zu is not inside the slot (%zu bytes)",
				    o->hole_off, o->hole_size, o->size);
	}
	o->seed32 = (uint32_t)o->seed | 1;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lopts[] = {
		{ "buffer", required_argument, NULL, 'b' },
		{ "case", required_argument, NULL, 'c' },
		{ "size", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'S' },
		{ "dirty-pages", required_argument, NULL, 'd' },
		{ "next", required_argument, NULL, 'n' },
		{ "hole-offset", required_argument, NULL, 'o' },
		{ "hole-size", required_argument, NULL, 'z' },
		{ NULL, 0, NULL, 0 },
	};
	struct given g = { 0 };
	int ch, i;

	*o = (struct opts){ .kcase = -1, .size = 4UL << 20, .seed = 1, .dirty_pages = 700 };
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 'b':
			o->buffer = optarg;
			o->kind = parse_buffer(optarg, false, &o->path);
			break;
		case 'c':
			for (i = 0; i < C_COUNT && strcmp(case_name[i], optarg); i++)
				;
			if (i == C_COUNT)
				usage_error("--case: unknown case '%s'; %s", optarg, usage_text);
			o->kcase = i;
			break;
		case 's':
			o->size = parse_size("size", optarg);
			break;
		case 'S':
			o->seed = parse_u64("seed", optarg);
			break;
		case 'd':
			o->dirty_pages = parse_u64("dirty-pages", optarg);
			g.dirty_pages = true;
			break;
		case 'n':
			if (strcmp(optarg, "read") && strcmp(optarg, "write"))
				usage_error("--next: expected read or write, got '%s'", optarg);
			o->next_read = !strcmp(optarg, "read");
			g.next = true;
			break;
		case 'o':
			o->hole_off = parse_size("hole-offset", optarg);
			g.hole_off = o->hole = true;
			break;
		case 'z':
			o->hole_size = parse_size("hole-size", optarg);
			g.hole_size = o->hole = true;
			break;
		default:
			usage_error("bad option '%s'; %s", argv[optind - 1], usage_text);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'; %s", argv[optind], usage_text);
	check_opts(o, &g);
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv)
{
	struct opts o;
	struct ctx c = { .o = &o, .kvm = -1, .vm = -1, .vcpu = -1, .buf_fd = -1 };
	bool completed;

	parse_args(argc, argv, &o);
	setvbuf(stdout, NULL, _IOLBF, 0);
	sigemptyset(&c.blocked);
	if ((o.kcase == C_HOLD || o.kcase == C_LOOP) && setup_control_signals(&c))
		fail("blocking the control signals: %s", errno_name(errno));
	if (guard_signal(SIGBUS) || guard_signal(SIGSEGV))
		fail("sigaction(SIGBUS/SIGSEGV): %s", errno_name(errno));
	completed = !fail_msg[0] && open_kvm(&c) == 0;
	if (completed)
		stats_open(&c);
	completed = completed && create_vcpu(&c) == 0 && code_slot(&c) == 0 &&
		    open_buffer(&c) == 0 && map_buffer(&c) == 0 && setup_cpu(&c) == 0 &&
		    run_case(&c) == 0;
	if (!completed)
		fprintf(stderr, "nvh-kvm: %s\n", fail_msg);
	/* The report first, so it is out whatever the teardown does. */
	print_final(&c, completed);
	cleanup(&c);
	free(R.runs);
	return completed ? 0 : 1;
}
