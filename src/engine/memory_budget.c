/* memory_budget.c: allocator statistics behind ksv_model_memory_bytes. */
#include "engine/memory_budget.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define KSV_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KSV_ASAN 1
#endif
#endif

#ifdef KSV_ASAN
/* Declared here, not through <sanitizer/allocator_interface.h>: gcc ships no such header
 * (clang does), while both compilers' ASan runtimes export the function. */
extern size_t __sanitizer_get_current_allocated_bytes(void);
#endif

uint64_t ksv_mem_allocated_bytes(void)
{
#ifdef KSV_ASAN
    return (uint64_t)__sanitizer_get_current_allocated_bytes();
#else
    /* mallinfo2 sums every arena: small chunks in use plus mmapped large ones. */
    struct mallinfo2 mi = mallinfo2();
    return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
#endif
}

/* ---- what one thread holds (memory_budget.h, ksv_mem_measure) ---------------------------
 *
 * glibc lets a program replace malloc, and its own functions then call the replacement
 * (glibc manual, "Replacing malloc"). These wrappers pass every call to glibc's allocator
 * (__libc_malloc...) and, on a thread whose `account` is set, add the usable size of what
 * the thread allocates and subtract what it frees. The cost elsewhere is one thread-local
 * load per call. Under AddressSanitizer, whose runtime owns malloc, there are no wrappers
 * and the sanitizer's process-wide figure is used instead. */
typedef struct thread_account {
    int64_t bytes;                /* allocated minus freed by the thread while counting */
} thread_account;

static __thread thread_account *account;

#ifndef KSV_ASAN
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t alignment, size_t n);
extern void __libc_free(void *p);

static void *counted(void *p)
{
    if (p && account)
        account->bytes += (int64_t)malloc_usable_size(p);
    return p;
}

void *malloc(size_t n)
{
    return counted(__libc_malloc(n));
}

void *calloc(size_t n, size_t size)
{
    return counted(__libc_calloc(n, size));
}

void free(void *p)
{
    if (p && account)
        account->bytes -= (int64_t)malloc_usable_size(p);
    __libc_free(p);
}

void *realloc(void *p, size_t n)
{
    size_t old = p && account ? malloc_usable_size(p) : 0;
    void *q = __libc_realloc(p, n);
    if (account && (q || n == 0))
        account->bytes += (int64_t)(q ? malloc_usable_size(q) : 0) - (int64_t)old;
    return q;
}

void *memalign(size_t alignment, size_t n)
{
    return counted(__libc_memalign(alignment, n));
}

void *aligned_alloc(size_t alignment, size_t n)
{
    return counted(__libc_memalign(alignment, n));
}

int posix_memalign(void **out, size_t alignment, size_t n)
{
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0)
        return EINVAL;
    void *p = __libc_memalign(alignment, n);
    if (!p)
        return ENOMEM;
    *out = counted(p);
    return 0;
}

void *valloc(size_t n)
{
    return counted(__libc_memalign((size_t)sysconf(_SC_PAGESIZE), n));
}

void *pvalloc(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return counted(__libc_memalign(page, (n + page - 1) / page * page));
}
#endif

typedef struct measured_call {
    void (*fn)(void *);
    void *arg;
    thread_account acct;
} measured_call;

static void *measured_main(void *p)
{
    measured_call *c = p;
    /* One OpenMP thread for whatever the work runs in parallel: libxgboost parses a model's
     * trees in a parallel loop, and what another thread allocates would not be counted
     * (while the booster's unload, on one thread, frees it all: ~180 KiB of fraud's 410).
     * libgomp comes with libxgboost; looked up, not linked, as ksv itself uses no OpenMP. */
    void (*set_threads)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    if (set_threads)
        set_threads(1);
    /* Stays set through the thread's exit, so that what its thread-local destructors
     * free (XGBoost's per-thread buffers) is subtracted too. */
    account = &c->acct;
    c->fn(c->arg);
    return NULL;
}

uint64_t ksv_mem_measure(void (*fn)(void *arg), void *arg)
{
    measured_call c = {fn, arg, {0}};
    uint64_t before = ksv_mem_allocated_bytes();
    pthread_t t;
    if (pthread_create(&t, NULL, measured_main, &c) != 0) {
        fn(arg);
        return ksv_mem_growth(before, ksv_mem_allocated_bytes());
    }
    pthread_join(t, NULL);
#ifdef KSV_ASAN
    return ksv_mem_growth(before, ksv_mem_allocated_bytes());
#else
    return c.acct.bytes > 0 ? (uint64_t)c.acct.bytes : 0;
#endif
}

uint64_t ksv_mem_growth(uint64_t before, uint64_t after)
{
    return after > before ? after - before : 0;
}

void ksv_mem_return_to_system(void)
{
#ifndef KSV_ASAN
    malloc_trim(0);
#endif
}

static int by_last_active(const void *a, const void *b)
{
    const ksv_mem_candidate *x = a, *y = b;
    return x->last_active_ns < y->last_active_ns ? -1 : x->last_active_ns > y->last_active_ns;
}

/* Whether the pool's need fits once `freed` bytes are given back. */
static bool fits(const ksv_mem_pool *p, uint64_t freed)
{
    return !p->budget || p->used - (freed < p->used ? freed : p->used) + p->need <= p->budget;
}

int ksv_mem_plan_eviction(ksv_mem_candidate *c, size_t n, const ksv_mem_pool *host,
                          const ksv_mem_pool *gpu, bool *gpu_short)
{
    *gpu_short = false;
    if (fits(host, 0) && fits(gpu, 0))
        return 0;
    qsort(c, n, sizeof *c, by_last_active);
    uint64_t freed = 0, gpu_freed = 0;
    for (size_t k = 0; k < n; k++) {
        freed += c[k].bytes;
        gpu_freed += c[k].gpu_bytes;
        if (fits(host, freed) && fits(gpu, gpu_freed))
            return (int)(k + 1);
    }
    *gpu_short = !fits(gpu, gpu_freed);
    return -1;
}

void ksv_mem_format(uint64_t bytes, char *buf, size_t cap)
{
    static const char *units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
        return;
    }
    double v = (double)bytes / 1024.0;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof *units) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, cap, "%.1f %s", v, units[u]);
}

int ksv_mem_budget_error(ksv_err *err, const char *device, const ksv_mem_pool *pool)
{
    char n[32], f[32], b[32];
    ksv_mem_format(pool->need, n, sizeof n);
    ksv_mem_format(pool->used < pool->budget ? pool->budget - pool->used : 0, f, sizeof f);
    ksv_mem_format(pool->budget, b, sizeof b);
    return ksv_err_set(err, 503, "%smemory budget: needs %s, free %s of %s",
                       strcmp(device, "gpu") == 0 ? "gpu " : "", n, f, b);
}
