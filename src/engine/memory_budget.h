/* memory_budget.h: what a loaded revision costs the node, measured, and the node's budget.
 *
 * A revision's host memory is what its load (file read, parse, runtime structures, warm-up
 * inference) allocated and still holds, counted on the thread that ran it
 * (ksv_mem_measure). Under AddressSanitizer the sanitizer's allocator is asked instead.
 *
 * Budget (ksv-engine --memory-budget): before a load whose size is known (the revision was
 * loaded before), and right after any load (measured), the revisions loaded must fit. What
 * does not fit first unloads revisions allowed to scale to zero, least recently used first;
 * when even that is not enough nothing is evicted and the load fails with
 * "memory budget: needs X, free Y of Z". A revision loaded for the first time is measured,
 * so the node may hold it beyond the budget for the duration of that one load. */
#ifndef KSV_ENGINE_MEMORY_BUDGET_H
#define KSV_ENGINE_MEMORY_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* Bytes the process's allocator has handed out and not had back. */
uint64_t ksv_mem_allocated_bytes(void);
/* Runs fn(arg) on a thread of its own (OpenMP limited to that one thread), waits for it, and
 * returns what that thread allocated and did not free: the usable size of every block it
 * got from malloc and friends, less what it freed, its exit included. Counted by the
 * engine's malloc wrappers (memory_budget.c) on that thread only, so other threads'
 * requests, glibc's per-thread cache and its arenas' slack do not count: the same model
 * measures the same to a few bytes from one load, and one engine, to the next (the
 * allocator's process-wide in-use growth, used before, moved by ~120 KiB under load).
 * Under AddressSanitizer (no wrappers) it is the sanitizer's process-wide growth. When no
 * thread can be started, fn runs on the caller's thread, measured that way too. */
uint64_t ksv_mem_measure(void (*fn)(void *arg), void *arg);
/* growth = after - before, clamped at 0 (a load that freed more than it took). */
uint64_t ksv_mem_growth(uint64_t before, uint64_t after);
/* Gives freed heap pages back to the system after unloads, so that the node's resident
 * size drops too. */
void ksv_mem_return_to_system(void);

/* A loaded revision that could be unloaded to make room. */
typedef struct ksv_mem_candidate {
    void *owner;                  /* the revision (opaque here) */
    uint64_t bytes;               /* host memory it holds */
    uint64_t gpu_bytes;           /* GPU memory it holds */
    int64_t last_active_ns;       /* least recently used goes first */
} ksv_mem_candidate;

/* One budget: what is held, what the load needs, and the bound (0: none). */
typedef struct ksv_mem_pool {
    uint64_t budget, used, need;
} ksv_mem_pool;

/* Orders candidates least recently used first and says how many of them must go so that
 * the need fits both budgets: used + need - (their bytes) <= budget, host and GPU. Returns
 * that count (0: it fits already), or -1 when even all of them are not enough (then
 * nothing should be evicted) with *gpu_short true when the GPU budget is the one that
 * cannot be met. */
int ksv_mem_plan_eviction(ksv_mem_candidate *c, size_t n, const ksv_mem_pool *host,
                          const ksv_mem_pool *gpu, bool *gpu_short);

/* Sets err (status 503) to "memory budget: needs X, free Y of Z" (device "gpu": "gpu memory
 * budget: ..."). */
int ksv_mem_budget_error(ksv_err *err, const char *device, const ksv_mem_pool *pool);

/* "1.5 GiB", "512.0 KiB", "100 B". */
void ksv_mem_format(uint64_t bytes, char *buf, size_t cap);

#endif
