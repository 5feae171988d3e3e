/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rslab_helpers.h - the C primitives rslab's Rust code calls; declared on
 * the Rust side in rust/sys.rs. See rslab_helpers.c for why each exists.
 */
#ifndef RSLAB_HELPERS_H
#define RSLAB_HELPERS_H

#include <linux/gfp_types.h>
#include <linux/jump_label.h>
#include <linux/percpu.h>
#include <linux/types.h>

struct dentry;
struct seq_file;
/* The start of a Rust debugfs file (rust/debugfs/file.rs): its callbacks. */
struct rslab_dfs_ops {
	int (*show)(struct seq_file *m, const struct rslab_dfs_ops *file);
	ssize_t (*store)(const struct rslab_dfs_ops *file, const char __user *buf, size_t len);
};
struct dentry *rslab_dfs_file(const char *name, umode_t mode, struct dentry *parent,
			      const struct rslab_dfs_ops *file);
struct dentry *rslab_dfs_dir(const char *name, struct dentry *parent);
void rslab_dfs_remove(struct dentry *dentry);
struct hlist_node;
int rslab_cpuhp_setup(int (*dead)(unsigned int cpu, struct hlist_node *node));
void rslab_cpuhp_remove(int state);
int rslab_cpuhp_add(int state, struct hlist_node *node);
void rslab_cpuhp_del(int state, struct hlist_node *node);
bool rslab_report_ratelimit(void);
void rslab_report_stack(void);
void rslab_report_taint(void);
void __percpu *rslab_pcpu_alloc(size_t size);
void rslab_pcpu_free(void __percpu *p);
/* What rslab_pcpu_lock() returns: sys.rs's PcpuLocked. */
struct rslab_pcpu_locked {
	void *data;
	unsigned long flags;
};

struct rslab_pcpu_locked rslab_pcpu_lock(void __percpu *p);
void rslab_pcpu_unlock(void __percpu *p, unsigned long flags);
void *rslab_pcpu_ptr(void __percpu *p, unsigned int cpu);
bool rslab_cpu_possible(unsigned int cpu);
unsigned int rslab_num_present_cpus(void);
int rslab_numa_mem_id(void);
void *rslab_pages_alloc(int nid, gfp_t gfp, unsigned int order);
void rslab_pages_free(void *addr, unsigned int order);
void rslab_set_page_tag(void *addr, unsigned long tag);
unsigned long rslab_page_tag(const void *obj);
unsigned long rslab_linear_page_tag(const void *obj);
void rslab_kmemleak_not_leak(const void *ptr);
void rslab_kmemleak_alloc(const void *ptr, size_t size, gfp_t gfp);
void rslab_kmemleak_free(const void *ptr);
void rslab_kmemleak_ignore(const void *ptr);
gfp_t rslab_gfp_opportunistic(gfp_t gfp);
gfp_t rslab_gfp_try_node(gfp_t gfp);
gfp_t rslab_gfp_user(bool nowait);
bool rslab_node_has_memory(int nid);
bool rslab_report_in_kunit(void);
void rslab_kunit_skip(const char *why);
void rslab_account_slab(void *addr, unsigned int order, int sign);
void rslab_might_alloc(gfp_t gfp);
bool rslab_init_on_alloc(void);
bool rslab_init_on_free(void);
/*
 * The module's static keys, in a struct because the kernel crate's
 * static_branch_unlikely!() names a key as a field of a static.
 */
struct rslab_static_keys {
	/* On while any cache has its latency histograms on. */
	struct static_key_false latency;
};
extern struct rslab_static_keys rslab_keys;
bool rslab_latency_switch(bool *on, bool want);
u64 rslab_local_clock(void);
void rslab_kasan_poison(const void *addr, size_t size, bool free);
void rslab_kasan_unpoison(const void *addr, size_t size);
bool rslab_kasan_is_free(const void *addr);
void rslab_kasan_quiet(void);
void rslab_kasan_loud(void);
bool rslab_kunit_kasan_accessible(const void *addr);
u8 rslab_kunit_read_byte(const void *p);
bool rslab_gfp_high(gfp_t gfp);
gfp_t rslab_gfp_slab_bug(gfp_t gfp);
unsigned int rslab_gfp_scope_enter(gfp_t gfp);
void rslab_gfp_scope_exit(unsigned int cookie);
bool rslab_gfp_allows_blocking(gfp_t gfp);
void *rslab_page_private(const void *obj);
void rslab_set_page_private(void *addr, void *meta);
int rslab_addr_nid(const void *obj);
void *rslab_head_address(const void *obj);
int rslab_on_each_cpu(void (*fn)(void *), void *info);
struct wait_queue_head;
struct wait_queue_entry;
void rslab_waitq_init(struct wait_queue_head *wq);
void rslab_waitq_prepare(struct wait_queue_head *wq, struct wait_queue_entry *entry,
			 bool killable);
bool rslab_fatal_signal_pending(void);
bool rslab_waitq_sleep(struct wait_queue_head *wq, struct wait_queue_entry *entry,
		       unsigned int ms);
void rslab_waitq_wake(struct wait_queue_head *wq);

/* rslab_bench.ko only (rslab_bench_helpers.c). */
void rslab_bench_cond_resched(void);
int rslab_bench_threads(void (*fn)(void *arg, unsigned int idx), void *arg, unsigned int n,
			bool bind, bool *stop);
int rslab_bench_nth_online_cpu(unsigned int n);
unsigned int rslab_bench_online_cpus(void);
int rslab_bench_move_to(unsigned int cpu);

#endif /* RSLAB_HELPERS_H */
