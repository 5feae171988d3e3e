// SPDX-License-Identifier: GPL-2.0
/*
 * rslab_helpers.c - the few C primitives rslab needs that Linux 7.3's Rust
 * kernel crate does not offer.
 *
 * The kernel crate has no abstraction for per-CPU data, local locks, pages of
 * a given order, or the struct page of a kernel address; most of these are
 * macros or static inlines, which bindgen cannot call. Each function here is
 * a thin wrapper around exactly one such primitive, so that all the logic
 * (and every unsafe block that relies on these) stays in Rust, where its
 * soundness is argued. Nothing here keeps state.
 */

#include <linux/completion.h>
#include <linux/debugfs.h>
#include <linux/cpuhotplug.h>
#include <linux/cpumask.h>
#include <linux/fs.h>
#include <linux/kasan.h>
#include <linux/gfp.h>
#include <linux/jump_label.h>
#include <linux/kmemleak.h>
#include <linux/kthread.h>
#include <linux/local_lock.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/printk.h>
#include <linux/ratelimit.h>
#include <linux/sched.h>
#include <linux/sched/clock.h>
#include <linux/sched/mm.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/topology.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "rslab_helpers.h"

/*
 * Whether this report may be printed: at most DEFAULT_RATELIMIT_BURST in
 * DEFAULT_RATELIMIT_INTERVAL, so that a corruption hit on every call cannot
 * flood the log. The one piece of state in this file: the rate limit of
 * all of rslab's reports together.
 */
bool rslab_report_ratelimit(void)
{
	static DEFINE_RATELIMIT_STATE(rs, DEFAULT_RATELIMIT_INTERVAL, DEFAULT_RATELIMIT_BURST);

	return __ratelimit(&rs);
}

void rslab_report_stack(void)
{
	dump_stack();
}

/* As SLUB after a report: the kernel's memory can no longer be trusted. */
void rslab_report_taint(void)
{
	add_taint(TAINT_BAD_PAGE, LOCKDEP_NOW_UNRELIABLE);
}

/*
 * debugfs files owned by this module (see rust/debugfs/file.rs). The 7.3 kernel
 * crate's debugfs file_operations set no .owner, so an open debugfs file
 * pins nothing: after rmmod, its release runs in freed module text. These
 * file_operations name THIS_MODULE, so debugfs's proxy takes a module
 * reference for as long as a file is open (rmmod says "in use"), and an
 * open that races the unload gets ENXIO. @file points at the Rust file,
 * which starts with its struct rslab_dfs_ops.
 */
static int rslab_dfs_show(struct seq_file *m, void *unused)
{
	const struct rslab_dfs_ops *ops = m->private;

	return ops->show ? ops->show(m, ops) : 0;
}

static int rslab_dfs_open(struct inode *inode, struct file *file)
{
	return single_open(file, rslab_dfs_show, inode->i_private);
}

static ssize_t rslab_dfs_write(struct file *file, const char __user *buf, size_t len,
			       loff_t *ppos)
{
	const struct rslab_dfs_ops *ops = file_inode(file)->i_private;

	return ops->store ? ops->store(ops, buf, len) : -EPERM;
}

static const struct file_operations rslab_dfs_fops = {
	.owner = THIS_MODULE,
	.open = rslab_dfs_open,
	.read = seq_read,
	.llseek = seq_lseek,
	.write = rslab_dfs_write,
	.release = single_release,
};

struct dentry *rslab_dfs_file(const char *name, umode_t mode, struct dentry *parent,
			      const struct rslab_dfs_ops *file)
{
	return debugfs_create_file(name, mode, parent, (void *)file, &rslab_dfs_fops);
}

struct dentry *rslab_dfs_dir(const char *name, struct dentry *parent)
{
	return debugfs_create_dir(name, parent);
}

/* Waits for running calls of its files; a file open after this pins the module. */
void rslab_dfs_remove(struct dentry *dentry)
{
	debugfs_remove(dentry);
}

/*
 * CPU hotplug (see rust/cache/hotplug.rs): a dynamic multi-instance state in the
 * PREPARE section, whose teardown runs on a control CPU once a CPU is dead,
 * for each instance (each cache), as SLUB's slub_cpu_dead(). Returns the
 * state (> 0) or an errno.
 */
int rslab_cpuhp_setup(int (*dead)(unsigned int cpu, struct hlist_node *node))
{
	return cpuhp_setup_state_multi(CPUHP_BP_PREPARE_DYN, "mm/rslab:dead", NULL, dead);
}

void rslab_cpuhp_remove(int state)
{
	cpuhp_remove_multi_state(state);
}

int rslab_cpuhp_add(int state, struct hlist_node *node)
{
	return cpuhp_state_add_instance_nocalls(state, node);
}

void rslab_cpuhp_del(int state, struct hlist_node *node)
{
	cpuhp_state_remove_instance_nocalls(state, node);
}

/*
 * Per-CPU sheaf storage: a local lock followed by the Rust-owned part. The
 * local lock is what SLUB's own per-CPU sheaves use: on !PREEMPT_RT it
 * disables interrupts (so the allocator may be used from IRQ context) and
 * tells lockdep which per-CPU data it protects.
 */
struct rslab_pcpu {
	local_lock_t lock;
	unsigned long data[] __aligned(sizeof(void *));
};

/* Allocates zeroed per-CPU storage with @size bytes of Rust data per CPU. */
void __percpu *rslab_pcpu_alloc(size_t size)
{
	struct rslab_pcpu __percpu *p;
	int cpu;

	p = __alloc_percpu_gfp(sizeof(struct rslab_pcpu) + size,
			       __alignof__(struct rslab_pcpu), GFP_KERNEL);
	if (!p)
		return NULL;
	for_each_possible_cpu(cpu)
		local_lock_init(&per_cpu_ptr(p, cpu)->lock);
	return p;
}

void rslab_pcpu_free(void __percpu *p)
{
	free_percpu(p);
}

/*
 * Locks this CPU's part of @p and returns its Rust data with the saved
 * interrupt flags, by value (two registers: no store and reload through
 * memory on the fast paths). Until the matching rslab_pcpu_unlock() the
 * caller stays on this CPU with interrupts off.
 */
struct rslab_pcpu_locked rslab_pcpu_lock(void __percpu *p)
{
	struct rslab_pcpu __percpu *pcpu = p;
	unsigned long flags;

	local_lock_irqsave(&pcpu->lock, flags);
	return (struct rslab_pcpu_locked){ .data = this_cpu_ptr(pcpu)->data, .flags = flags };
}

void rslab_pcpu_unlock(void __percpu *p, unsigned long flags)
{
	struct rslab_pcpu __percpu *pcpu = p;

	local_unlock_irqrestore(&pcpu->lock, flags);
}

/* CPU @cpu's Rust data, for readers that sum counters or drain other CPUs. */
void *rslab_pcpu_ptr(void __percpu *p, unsigned int cpu)
{
	struct rslab_pcpu __percpu *pcpu = p;

	return per_cpu_ptr(pcpu, cpu)->data;
}

bool rslab_cpu_possible(unsigned int cpu)
{
	return cpu < nr_cpu_ids && cpu_possible(cpu);
}

unsigned int rslab_num_present_cpus(void)
{
	return num_present_cpus();
}

/* The node whose memory this CPU should use (memoryless nodes fall back). */
int rslab_numa_mem_id(void)
{
	return numa_mem_id();
}

/*
 * Allocates a slab: 2^@order contiguous pages as one compound page, near
 * node @nid, and returns their address in the direct map, or NULL.
 */
void *rslab_pages_alloc(int nid, gfp_t gfp, unsigned int order)
{
	struct page *page = alloc_pages_node(nid, gfp | __GFP_COMP, order);

	return page ? page_address(page) : NULL;
}

/* A leaked object on purpose (see Slab::leak): kmemleak is not to report it. */
void rslab_kmemleak_not_leak(const void *ptr)
{
	kmemleak_not_leak(ptr);
}

/*
 * kmemleak's view of rslab's objects (CONFIG_DEBUG_KMEMLEAK only; the Rust
 * side calls nothing on other kernels): an object is registered when it is
 * handed out, scanned while allocated, and unregistered when freed, as
 * SLUB's kmemleak_alloc_recursive()/kmemleak_free_recursive().
 */
void rslab_kmemleak_alloc(const void *ptr, size_t size, gfp_t gfp)
{
	kmemleak_alloc(ptr, size, 1, gfp);
}

void rslab_kmemleak_free(const void *ptr)
{
	kmemleak_free(ptr);
}

/* Neither scanned nor reported: metadata that points into slabs. */
void rslab_kmemleak_ignore(const void *ptr)
{
	kmemleak_ignore(ptr);
}

void rslab_pages_free(void *addr, unsigned int order)
{
	struct page *page = virt_to_page(addr);

	set_page_private(page, 0);
	page_folio(page)->index = 0;
	__free_pages(page, order);
}

/*
 * Counts @addr's 2^@order pages as slab memory (@sign 1) or no longer
 * (@sign -1) in their node's NR_SLAB_UNRECLAIMABLE_B, so that
 * /proc/meminfo's Slab: and SUnreclaim: include rslab's slabs and large
 * kmalloc pages, as SLUB's account_slab() and kmalloc_large do (without the
 * memcg part: lruvec_stat_mod_folio() is not exported).
 */
void rslab_account_slab(void *addr, unsigned int order, int sign)
{
	mod_node_page_state(page_pgdat(virt_to_page(addr)), NR_SLAB_UNRECLAIMABLE_B,
			    sign * (long)(PAGE_SIZE << order));
}

#ifdef CONFIG_KASAN_GENERIC
/*
 * Generic KASAN's shadow, for rslab's objects (see rust/cache/kasan.rs). The
 * exported kasan_poison() sets the shadow of a granule-aligned range; its
 * prototype is in mm/kasan/kasan.h, which a module cannot include, and so
 * are the shadow values, which are repeated here.
 */
void kasan_poison(const void *addr, size_t size, u8 value, bool init);
#define RSLAB_KASAN_SLAB_REDZONE 0xFC
#define RSLAB_KASAN_SLAB_FREE 0xFB
#define RSLAB_KASAN_GRANULE (1UL << KASAN_SHADOW_SCALE_SHIFT)

/* @size bytes at @addr (granule aligned) are free or red zone. */
void rslab_kasan_poison(const void *addr, size_t size, bool free)
{
	kasan_poison(addr, round_up(size, RSLAB_KASAN_GRANULE),
		     free ? RSLAB_KASAN_SLAB_FREE : RSLAB_KASAN_SLAB_REDZONE, false);
}

/*
 * Exactly @size bytes at @addr (granule aligned) may be used: whole
 * granules, then the first size % 8 bytes of the last one (its shadow byte
 * holds that count, generic KASAN's encoding).
 */
void rslab_kasan_unpoison(const void *addr, size_t size)
{
	size_t whole = round_down(size, RSLAB_KASAN_GRANULE);

	kasan_poison(addr, whole, 0, false);
	if (size != whole)
		kasan_poison(addr + whole, RSLAB_KASAN_GRANULE, size - whole, false);
}

/* Whether the object at @addr is poisoned as freed: a second free. */
bool rslab_kasan_is_free(const void *addr)
{
	return *(u8 *)kasan_mem_to_shadow(addr) == RSLAB_KASAN_SLAB_FREE;
}

/*
 * rslab's own accesses to free objects (freelist pointers, poison and red
 * zone checks) are not reported: SLUB's metadata_access_enable().
 */
void rslab_kasan_quiet(void)
{
	kasan_disable_current();
}

void rslab_kasan_loud(void)
{
	kasan_enable_current();
}
#endif

/* might_alloc(): lockdep's reclaim map and the sleep checker see @gfp. */
void rslab_might_alloc(gfp_t gfp)
{
	might_alloc(gfp);
}

/* Whether init_on_alloc / init_on_free (boot parameters) are on. */
bool rslab_init_on_alloc(void)
{
	return static_branch_maybe(CONFIG_INIT_ON_ALLOC_DEFAULT_ON, &init_on_alloc);
}

bool rslab_init_on_free(void)
{
	return static_branch_maybe(CONFIG_INIT_ON_FREE_DEFAULT_ON, &init_on_free);
}

struct rslab_static_keys rslab_keys = {
	.latency = STATIC_KEY_FALSE_INIT,
};

/* Serialises the switches, so that the key's count never goes below zero. */
static DEFINE_MUTEX(rslab_latency_mutex);

/*
 * Turns a cache's latency histograms on or off (*@on to @want), and the
 * key with them: the key counts the caches that have them on. Whether it
 * changed anything. May sleep (the key's patching takes cpus_read_lock()).
 */
bool rslab_latency_switch(bool *on, bool want)
{
	guard(mutex)(&rslab_latency_mutex);
	if (READ_ONCE(*on) == want)
		return false;
	if (want)
		static_branch_inc(&rslab_keys.latency);
	WRITE_ONCE(*on, want);
	if (!want)
		static_branch_dec(&rslab_keys.latency);
	return true;
}

/* The latency histograms' clock: nanoseconds, cheap, for short intervals. */
u64 rslab_local_clock(void)
{
	return local_clock();
}

/*
 * The tag of rslab's pages: the head page's folio->index (which the page
 * allocator leaves to the owner of a non-page-cache page) holds a random
 * per-cache value, so that a free can tell a pointer into one of its own
 * slabs from any other address before it trusts page->private. Cleared
 * again by rslab_pages_free().
 */
void rslab_set_page_tag(void *addr, unsigned long tag)
{
	page_folio(virt_to_page(addr))->index = tag;
}

/* The tag of the pages holding @obj; 0 outside the direct map. */
unsigned long rslab_page_tag(const void *obj)
{
	if (!virt_addr_valid(obj))
		return 0;
	return page_folio(virt_to_page(obj))->index;
}

/*
 * rslab_page_tag() with a bounds check of the linear map for
 * virt_addr_valid() (its pfn_valid() walk of the memory sections is about
 * 40 instructions, a sixth of a kmalloc alloc+free): vmalloc, stack,
 * module and kernel-image addresses still give 0, but @obj must not lie in
 * a hole of the linear map, which has no struct page to read (nor may a
 * pointer given to SLUB's kfree(), which reads its page unchecked).
 */
unsigned long rslab_linear_page_tag(const void *obj)
{
	unsigned long addr = (unsigned long)obj;

	if (addr < PAGE_OFFSET || addr >= (unsigned long)high_memory)
		return 0;
	return page_folio(virt_to_page(obj))->index;
}

/*
 * The gfp for an attempt at a higher order than needed: cheap to refuse, as
 * in SLUB's allocate_slab(): no reclaim, no emergency reserves.
 */
gfp_t rslab_gfp_opportunistic(gfp_t gfp)
{
	gfp = (gfp | __GFP_NOWARN | __GFP_NORETRY) & ~__GFP_NOFAIL;
	if (gfp & __GFP_DIRECT_RECLAIM)
		gfp = (gfp | __GFP_NOMEMALLOC) & ~__GFP_RECLAIM;
	return gfp;
}

/*
 * The gfp for a first try at a new slab on a preferred node: that node only,
 * and no waiting (SLUB's ___slab_alloc() "trynode_flags"); the caller falls
 * back to any node with its own gfp if it fails.
 */
gfp_t rslab_gfp_try_node(gfp_t gfp)
{
	return (gfp & (GFP_NOWAIT | __GFP_NOMEMALLOC | __GFP_ACCOUNT)) |
	       __GFP_NOWARN | __GFP_THISNODE;
}

/*
 * The gfp for what user space makes through /dev/rslab: charged to its
 * memory cgroup (__GFP_ACCOUNT), and refused with ENOMEM rather than
 * calling the OOM killer (__GFP_RETRY_MAYFAIL, which memcg's charge path
 * honours too) or warning (a user could fill the log). @nowait: no sleep.
 */
gfp_t rslab_gfp_user(bool nowait)
{
	if (nowait)
		return GFP_NOWAIT | __GFP_ACCOUNT | __GFP_NOWARN;
	return GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL | __GFP_NOWARN;
}

/* Whether @nid is a node with memory: one a node-directed allocation may name. */
bool rslab_node_has_memory(int nid)
{
	return nid >= 0 && nid < nr_node_ids && node_state(nid, N_MEMORY);
}

/* Whether @gfp may use the reserves above the min watermark (GFP_ATOMIC). */
bool rslab_gfp_high(gfp_t gfp)
{
	return gfp & __GFP_HIGH;
}

/*
 * The bits a slab allocation must not be asked for: mm/internal.h's
 * GFP_SLAB_BUG_MASK, which a module cannot include.
 */
gfp_t rslab_gfp_slab_bug(gfp_t gfp)
{
	return gfp & (__GFP_DMA32 | __GFP_HIGHMEM | ~__GFP_BITS_MASK);
}

/*
 * Enters the allocation scope that @gfp asks for (memalloc_noio_save() or
 * memalloc_nofs_save()), so that allocations made with the kernel crate's
 * GFP_KERNEL keep a NOIO or NOFS caller's restriction; returns the cookie
 * for rslab_gfp_scope_exit().
 */
unsigned int rslab_gfp_scope_enter(gfp_t gfp)
{
	if (!(gfp & __GFP_IO))
		return memalloc_noio_save();
	if (!(gfp & __GFP_FS))
		return memalloc_nofs_save();
	return 0;
}

/* Both scopes end with memalloc_flags_restore() of what their save set. */
void rslab_gfp_scope_exit(unsigned int cookie)
{
	memalloc_flags_restore(cookie);
}

bool rslab_gfp_allows_blocking(gfp_t gfp)
{
	return gfpflags_allow_blocking(gfp);
}

/*
 * Slab lookup from an object, SLUB's virt_to_slab(): the head page of the
 * compound page that holds @obj carries the slab's metadata pointer in its
 * private field. @obj must be in the direct map, and every caller has found
 * it there already: a page tag that rslab_page_tag() read, or an object of
 * rslab's own. (It was checked here again with virt_addr_valid(), about 40
 * instructions, for every object a flush sent back to its slab: 14% of
 * make bench's out10000 pair.)
 */
void *rslab_page_private(const void *obj)
{
	return (void *)page_private(compound_head(virt_to_page(obj)));
}

void rslab_set_page_private(void *addr, void *meta)
{
	set_page_private(virt_to_page(addr), (unsigned long)meta);
}

/* The node of the memory at @obj. */
int rslab_addr_nid(const void *obj)
{
	return page_to_nid(virt_to_page(obj));
}

/*
 * The address of the slab (compound page) that holds @obj, or NULL outside
 * the direct map. Used with consistency checks to validate a pointer.
 */
void *rslab_head_address(const void *obj)
{
	if (!virt_addr_valid(obj))
		return NULL;
	return page_address(compound_head(virt_to_page(obj)));
}

struct rslab_cpu_work {
	struct work_struct work;
	void (*fn)(void *);
	void *info;
};

static void rslab_cpu_work_fn(struct work_struct *work)
{
	struct rslab_cpu_work *w = container_of(work, struct rslab_cpu_work, work);

	w->fn(w->info);
}

/*
 * Runs @fn(@info) on every online CPU, in process context (a kworker bound to
 * that CPU), and waits for all of them; as SLUB's flush_all_cpus_locked(),
 * not on_each_cpu(): the per-CPU local lock @fn takes must not be taken in
 * hard interrupt context (lockdep: "Invalid wait context"; on PREEMPT_RT it
 * sleeps). -ENOMEM, having run nothing, if the work items cannot be
 * allocated.
 */
int rslab_on_each_cpu(void (*fn)(void *), void *info)
{
	struct rslab_cpu_work *works;
	unsigned int cpu;

	works = kcalloc(nr_cpu_ids, sizeof(*works), GFP_KERNEL);
	if (!works)
		return -ENOMEM;
	cpus_read_lock();
	for_each_online_cpu(cpu) {
		INIT_WORK(&works[cpu].work, rslab_cpu_work_fn);
		works[cpu].fn = fn;
		works[cpu].info = info;
		queue_work_on(cpu, system_percpu_wq, &works[cpu].work);
	}
	for_each_online_cpu(cpu)
		flush_work(&works[cpu].work);
	cpus_read_unlock();
	kfree(works);
	return 0;
}

/*
 * Mempool waiting, as mm/mempool.c waits: prepare_to_wait() while the pool
 * lock is still held (so a free between unlock and sleep is not missed),
 * then an uninterruptible io_schedule_timeout(). The kernel crate's CondVar
 * has no uninterruptible wait with a timeout.
 */
void rslab_waitq_init(struct wait_queue_head *wq)
{
	init_waitqueue_head(wq);
}

/* Killable: a fatal signal ends the sleep (see rslab_fatal_signal_pending()). */
void rslab_waitq_prepare(struct wait_queue_head *wq, struct wait_queue_entry *entry,
			 bool killable)
{
	init_wait(entry);
	prepare_to_wait(wq, entry, killable ? TASK_KILLABLE : TASK_UNINTERRUPTIBLE);
}

bool rslab_fatal_signal_pending(void)
{
	return fatal_signal_pending(current);
}

/* Sleeps up to @ms milliseconds; returns true if woken before that. */
bool rslab_waitq_sleep(struct wait_queue_head *wq, struct wait_queue_entry *entry,
		       unsigned int ms)
{
	long left = io_schedule_timeout(msecs_to_jiffies(ms));

	finish_wait(wq, entry);
	return left > 0;
}

void rslab_waitq_wake(struct wait_queue_head *wq)
{
	wake_up(wq);
}
