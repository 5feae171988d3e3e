// SPDX-License-Identifier: GPL-2.0
/*
 * rslab_bench.ko's C helpers: the product's (see Kbuild), and the
 * benchmark's own primitives, which the kernel crate lacks (kthreads, CPU
 * affinity, cond_resched()). rslab.ko carries none of these.
 */
#include "rslab_helpers.c"

#include <linux/completion.h>
#include <linux/cpumask.h>
#include <linux/kthread.h>

/* cond_resched(), a macro: the bench yields between its runs. */
void rslab_bench_cond_resched(void)
{
	cond_resched();
}

/*
 * Benchmark threads (rust/bench/loops.rs): kthreads started together. The
 * kernel crate has no kthread abstraction. Each thread waits for one shared
 * completion, so none starts its loop before all exist, then runs
 * @fn(@arg, index) and signals its own completion.
 */
struct rslab_bench_thread {
	struct completion *start;
	struct completion done;
	void (*fn)(void *arg, unsigned int idx);
	void *arg;
	unsigned int idx;
};

static int rslab_bench_thread_fn(void *data)
{
	struct rslab_bench_thread *t = data;

	wait_for_completion(t->start);
	t->fn(t->arg, t->idx);
	/* Completes and exits without returning into module code. */
	kthread_complete_and_exit(&t->done, 0);
}

/*
 * Runs @fn on @n kthreads released together: with @bind, thread i is bound
 * to the i-th online CPU; without, the threads may run anywhere (and move
 * themselves with rslab_bench_move_to()). Returns 0 once every thread has
 * finished, or a negative errno if they could not all be created, in which
 * case none ran @fn. With @stop, the caller waits killably: a fatal signal
 * sets *@stop, which @fn polls, and the wait goes on until the threads end.
 */
int rslab_bench_threads(void (*fn)(void *arg, unsigned int idx), void *arg, unsigned int n,
			bool bind, bool *stop)
{
	DECLARE_COMPLETION_ONSTACK(start);
	struct task_struct **tasks;
	struct rslab_bench_thread *t;
	unsigned int i, made = 0;
	int err = 0;

	t = kcalloc(n, sizeof(*t), GFP_KERNEL);
	tasks = kcalloc(n, sizeof(*tasks), GFP_KERNEL);
	if (!t || !tasks) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		int cpu = bind ? rslab_bench_nth_online_cpu(i) : -1;

		t[i] = (struct rslab_bench_thread){ .start = &start, .fn = fn, .arg = arg, .idx = i };
		init_completion(&t[i].done);
		if (bind && cpu < 0) {
			err = -ENODEV;
			break;
		}
		tasks[i] = bind ? kthread_create_on_cpu(rslab_bench_thread_fn, &t[i], cpu,
							"rslab_bench/%u") :
				  kthread_create(rslab_bench_thread_fn, &t[i], "rslab_bench");
		if (IS_ERR(tasks[i])) {
			err = PTR_ERR(tasks[i]);
			break;
		}
		made++;
	}
	if (err) {
		/* Never woken, so stopping them skips @fn. */
		for (i = 0; i < made; i++)
			kthread_stop(tasks[i]);
		goto out;
	}
	for (i = 0; i < n; i++)
		wake_up_process(tasks[i]);
	complete_all(&start);
	for (i = 0; i < n; i++) {
		/* Each wait that returns 0 consumes the thread's one complete(). */
		if (!stop || wait_for_completion_killable(&t[i].done)) {
			if (stop)
				WRITE_ONCE(*stop, true);
			wait_for_completion(&t[i].done);
		}
	}
out:
	kfree(tasks);
	kfree(t);
	return err;
}

/* The @n-th online CPU (from 0), or -1 if fewer are online. */
int rslab_bench_nth_online_cpu(unsigned int n)
{
	unsigned int cpu = cpumask_nth(n, cpu_online_mask);

	return cpu < nr_cpu_ids ? cpu : -1;
}

unsigned int rslab_bench_online_cpus(void)
{
	return num_online_cpus();
}

/* Moves the calling task to @cpu; it runs there when this returns 0. */
int rslab_bench_move_to(unsigned int cpu)
{
	if (cpu >= nr_cpu_ids || !cpu_online(cpu))
		return -EINVAL;
	return set_cpus_allowed_ptr(current, cpumask_of(cpu));
}
