/* registry.c: models, revisions, traffic split and the lifecycle thread that loads,
 * drains and unloads revisions. See registry.h for the locking rules. */
#include "common/clock.h"
#include "common/random.h"
#include "engine/registry.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/fileutil.h"
#include "common/log.h"
#include "common/sha256.h"
#include "engine/fetch_pool.h"
#include "engine/memory_budget.h"
#include "engine/storage.h"
#include "engine/usage.h"

#define ERROR_RING 32
#define MAX_MODEL_REVS (2 * KSV_MAX_REVISIONS)
#define STATE_FILE_MAX (16u << 20)
#define COLD_RETRY_S 5 /* a failed cold start is tried again by a request after this */

typedef struct ksv_error_entry {
    double unix_time;
    int status;
    char request_id[48];
    char revision[KSV_NAME_MAX];
    char message[200];
} ksv_error_entry;

typedef struct split_slot {
    ksv_engine_revision *rev;
    int cumulative;               /* upper bound (exclusive) of this slot in 0..100 */
} split_slot;

struct ksv_engine_model {
    ksv_model_spec spec;          /* desired state, as last put */
    /* The spec's revisions, then removed ones still serving. */
    ksv_engine_revision *revs[MAX_MODEL_REVS];
    size_t n_revs;
    split_slot split[MAX_MODEL_REVS];
    size_t n_split;               /* 0: nothing ready yet */
    bool pending;                 /* desired split not in effect yet */
    bool deleted;
    int rev_structs;              /* revisions (live or dead) pointing at this model */
    ksv_engine_revision *mirror;         /* where a release gate copies requests; NULL: nowhere */
    int mirror_weight;            /* percent of requests copied */
    pthread_mutex_t errors_mu;    /* error path only */
    ksv_error_entry errors[ERROR_RING];
    size_t errors_next, errors_count;
};

struct ksv_registry {
    pthread_rwlock_t lock;
    ksv_engine_model **models;
    size_t n_models, cap_models;
    ksv_engine_revision **dead_revs;     /* removed revisions waiting for in-flight requests */
    size_t n_dead, cap_dead;
    ksv_engine_model **dead_models;
    size_t n_dead_models, cap_dead_models;

    pthread_mutex_t admin_mu;     /* serializes admin changes and state-file writes */
    unsigned workers;
    int gpu;
    int load_delay_ms;            /* test hook: slows every load (ksv_registry_config) */
    uint64_t memory_budget;       /* --memory-budget; 0: none */
    uint64_t gpu_memory_budget;   /* --gpu-memory-budget; 0: none */
    char *state_file;
    char *reload_dir;             /* runtimes' fast-reload copies (runtime.h); NULL: none */
    ksv_cache *cache;             /* fetched models; NULL without a cache folder */
    ksv_fetch_pool *fetcher;      /* downloads, off the lifecycle thread */
    ksv_pulls *pulls;             /* fetches ahead of a rollout (the pool runs them) */
    ksv_event_log *events;        /* not owned */
    const ksv_clock *clock;       /* elastic bookkeeping's clock; NULL: the real one */
    ksv_usage_queue usage;        /* residency events waiting to be written (usage.h) */
    ksv_model_state_extra_fn state_extra; /* set once before serving */
    void *state_extra_ctx;

    ksv_cold_queue cold_queue;    /* requests waiting for scaled-to-zero revisions */

    pthread_t lifecycle;
    pthread_mutex_t lc_mu;
    pthread_cond_t lc_cond;
    bool lc_stop, lc_wake, lc_started;
};

static void push_error(ksv_engine_model *m, int status, const char *revision,
                       const char *request_id, const char *message);

/* Times of the elastic bookkeeping (idle windows, residencies): the registry's clock. */
static int64_t reg_now_ns(const ksv_registry *reg)
{
    return ksv_clock_mono_ns(reg->clock);
}

static double reg_now_s(const ksv_registry *reg)
{
    return ksv_clock_mono_s(reg->clock);
}

/* The gap without requests that counts as idle time: the model's stable window. */
static int64_t idle_gap_ns(const ksv_model_spec *m)
{
    int w = m->scale_window_s > 0 ? m->scale_window_s : KSV_DEFAULT_SCALE_WINDOW_S;
    return (int64_t)w * 1000000000LL;
}

/* The revision's autoscaler settings; the stable window is its model's. */
static ksv_kpa_params kpa_params(const ksv_engine_revision *rev)
{
    const ksv_model_spec *m = &rev->model->spec;
    ksv_scale_metric metric =
        strcmp(rev->spec.scale_metric, "rps") == 0 ? KSV_SCALE_RPS : KSV_SCALE_CONCURRENCY;
    return (ksv_kpa_params){
        .min_replicas = rev->spec.min_replicas,
        .max_replicas = rev->spec.max_replicas,
        .target = ksv_kpa_target(metric, rev->spec.scale_target,
                                 rev->spec.container_concurrency, m->target_utilization),
        .metric = metric,
        .window_s = m->scale_window_s > 0 ? m->scale_window_s : KSV_DEFAULT_SCALE_WINDOW_S,
        .scale_down_delay_s = m->scale_down_delay_s,
    };
}

/* Every answer the revision gave (client-facing), since the engine started. */
static uint64_t answers(const ksv_engine_revision *rev)
{
    uint64_t n = 0;
    for (int i = 0; i < KSV_CODE_SLOTS; i++)
        n += atomic_load_explicit(&((ksv_engine_revision *)rev)->codes[i], memory_order_relaxed);
    return n;
}

/* Queues a residency event (usage.h) for the revision; memory is what it holds (or held
 * until this moment). A "model-load" or "cold-start" begins a residency; any other kind
 * ends the current one, with its requests and idle time. Caller holds the write lock. */
static void note_usage(ksv_registry *reg, ksv_engine_revision *rev, const char *kind,
                       const char *reason, uint64_t memory)
{
    ksv_usage_note u = {
        .kind = kind,
        .reason = reason,
        .at_ms = ksv_clock_wall_ms(reg->clock),
        .memory_bytes = memory,
        .gpu_memory_bytes = rev->gpu_memory_bytes,
        .load_seconds = rev->load_seconds,
    };
    snprintf(u.model, sizeof u.model, "%s", rev->model->spec.name);
    snprintf(u.revision, sizeof u.revision, "%s", rev->spec.name);
    bool begins = strcmp(kind, "model-load") == 0 || strcmp(kind, "cold-start") == 0;
    if (begins) {
        rev->resident_since_ms = u.at_ms;
        rev->requests_at_load = answers(rev);
        ksv_kpa_params p = kpa_params(rev);
        if (ksv_kpa_start(&rev->kpa, &p, rev->requests_at_load) != 0)
            ksv_log(KSV_LOG_WARN, NULL, "revision %s: no autoscaler (out of memory)",
                    rev->spec.name);
        ksv_cold_residency_start(&rev->cold, reg_now_ns(reg));
    } else if (rev->resident_since_ms) {
        u.requests = answers(rev) - rev->requests_at_load;
        u.idle_seconds = (double)ksv_cold_idle_ns(&rev->cold, reg_now_ns(reg),
                                                  atomic_load(&rev->idle_gap_ns)) * 1e-9;
        u.resident_seconds = (double)(u.at_ms - rev->resident_since_ms) * 1e-3;
        rev->resident_since_ms = 0;
        ksv_kpa_stop(&rev->kpa);
    }
    ksv_usage_push(&reg->usage, &u);
}

/* ------------------------------------------------------------------ small helpers */

const char *ksv_rev_state_name(ksv_rev_state s)
{
    static const char *names[] = {"loading", "ready",  "draining",      "standby",
                                  "unloaded", "failed", "scaled-to-zero"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "unknown";
}

static const int code_values[KSV_CODE_SLOTS] = {200, 400, 404, 408, 409, 413, 500, 503, 0};

int ksv_code_slot(int status)
{
    for (int i = 0; i < KSV_CODE_SLOTS - 1; i++)
        if (code_values[i] == status)
            return i;
    return KSV_CODE_SLOTS - 1;
}

int ksv_code_of_slot(int slot)
{
    return code_values[slot];
}

static bool is_loaded(const ksv_engine_revision *rev)
{
    return rev->handle && (rev->state == KSV_REV_READY || rev->state == KSV_REV_DRAINING ||
                           rev->state == KSV_REV_STANDBY);
}

/* How many requests the revision may run at once: containerConcurrency per replica the
 * autoscaler gives it (KServe's containerConcurrency is per replica); 0: no limit. */
static int64_t concurrency_limit(const ksv_engine_revision *rev)
{
    int replicas = ksv_kpa_replicas(&rev->kpa);
    return (int64_t)rev->spec.container_concurrency * (replicas > 1 ? replicas : 1);
}

/* Reserves one of the revision's in-flight slots if one is free (ksv_cold_grant's take). */
static bool take_slot(void *arg)
{
    ksv_engine_revision *rev = arg;
    int64_t limit = concurrency_limit(rev);
    int64_t now = atomic_load(&rev->inflight);
    while (limit <= 0 || now < limit)
        if (atomic_compare_exchange_weak(&rev->inflight, &now, now + 1))
            return true;
    return false;
}

/* Hands the revision's free slots to its oldest waiting requests. Caller holds the lock. */
static void grant_slots(ksv_registry *reg, ksv_engine_revision *rev)
{
    if (atomic_load(&rev->cold.capacity_depth) > 0)
        ksv_cold_grant(&reg->cold_queue, &rev->cold, rev->model->spec.name, rev->spec.name,
                       take_slot, rev, rev);
}

/* Gives back a slot of a revision with a concurrency limit: the oldest waiting request
 * gets it. Under the read lock, so that the revision cannot be freed between the two
 * steps; sequentially consistent against ksv_cold_enqueue_capacity's count and take. */
static void release_slot(ksv_registry *reg, ksv_engine_revision *rev)
{
    pthread_rwlock_rdlock(&reg->lock);
    atomic_fetch_sub(&rev->inflight, 1);
    grant_slots(reg, rev);
    pthread_rwlock_unlock(&reg->lock);
}

/* Can take requests: loaded, or scaled to zero (a request starts it). */
static bool routable(const ksv_engine_revision *rev)
{
    return is_loaded(rev) || rev->cold.cold;
}

/* The runtime that answers: what `auto` chose at the last load, else the one named. */
static const char *effective_runtime(const ksv_engine_revision *rev)
{
    return rev->info.runtime[0] ? rev->info.runtime : rev->spec.runtime;
}

static void wake_lifecycle(ksv_registry *reg)
{
    pthread_mutex_lock(&reg->lc_mu);
    reg->lc_wake = true;
    pthread_cond_signal(&reg->lc_cond);
    pthread_mutex_unlock(&reg->lc_mu);
}

static bool push_ptr(void ***arr, size_t *n, size_t *cap, void *p)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        void **q = realloc(*arr, nc * sizeof *q);
        if (!q)
            return false;
        *arr = q;
        *cap = nc;
    }
    (*arr)[(*n)++] = p;
    return true;
}

static ksv_engine_model *find_model(ksv_registry *reg, const char *name)
{
    for (size_t i = 0; i < reg->n_models; i++)
        if (strcmp(reg->models[i]->spec.name, name) == 0)
            return reg->models[i];
    return NULL;
}

static ksv_engine_revision *find_revision(ksv_engine_model *m, const char *name)
{
    for (size_t i = 0; i < m->n_revs; i++)
        if (strcmp(m->revs[i]->spec.name, name) == 0)
            return m->revs[i];
    return NULL;
}

static ksv_engine_revision *revision_new(ksv_registry *reg, ksv_engine_model *m, const ksv_revision_spec *spec)
{
    ksv_engine_revision *rev = calloc(1, sizeof *rev);
    if (!rev)
        return NULL;
    rev->spec = *spec;
    rev->model = m;
    rev->state = KSV_REV_LOADING;
    rev->ops = ksv_runtime_find(spec->runtime);
    ksv_hist_init(&rev->latency);
    ksv_hist_init(&rev->mirror_latency);
    ksv_cold_state_init(&rev->cold, reg_now_ns(reg));
    atomic_init(&rev->idle_gap_ns, idle_gap_ns(&m->spec));
    if (rev->ops && rev->ops->proxied) {
        if (!(rev->llm = malloc(sizeof *rev->llm))) {
            free(rev);
            return NULL;
        }
        ksv_llm_stats_init(rev->llm);
    }
    m->rev_structs++;
    return rev;
}

typedef struct unload_item {
    const ksv_runtime_ops *ops;
    void *handle;
    ksv_batcher *batcher;
} unload_item;

/* Frees what unloading a revision leaves; called outside the lock. */
static void unload(const unload_item *it)
{
    ksv_batcher_destroy(it->batcher);
    if (it->handle)
        it->ops->unload(it->handle);
}

/* Moves what a loaded revision holds into *it, to be unloaded outside the lock. */
static void take_runtime(ksv_engine_revision *rev, unload_item *it)
{
    it->ops = rev->ops;
    it->handle = rev->handle;
    it->batcher = rev->batcher;
    rev->handle = NULL;
    rev->batcher = NULL;
    rev->memory_bytes = 0;
    rev->gpu_memory_bytes = 0;
}

/* Frees a revision nobody uses any more; what it had loaded goes to *it, to be unloaded
 * outside the lock. */
static void revision_free(ksv_registry *reg, ksv_engine_revision *rev, unload_item *it)
{
    ksv_cache_unpin(reg->cache, rev->cache_tree);
    ksv_kpa_stop(&rev->kpa);
    it->ops = rev->ops;
    it->handle = rev->handle;
    it->batcher = rev->batcher;
    rev->model->rev_structs--;
    free(rev->fetched_path);
    free(rev->llm);
    free(rev);
}

static bool uses_copy(const ksv_engine_revision *o, const ksv_engine_revision *rev,
                      const uint8_t source[32])
{
    return o && o != rev && o->has_reload_sha256 &&
           memcmp(o->checked_sha256, source, sizeof o->checked_sha256) == 0;
}

/* The fast-reload copy of the checked bytes `source` that rev had, now of no use to it (it
 * is freed, or its file changed): removed unless another revision (the same file) still
 * counts on it. Caller holds the write lock. */
static void drop_reload_copy(ksv_registry *reg, const ksv_engine_revision *rev,
                             const uint8_t source[32])
{
    if (!reg->reload_dir || !rev->has_reload_sha256)
        return;
    for (size_t i = 0; i < reg->n_models; i++)
        for (size_t r = 0; r < reg->models[i]->n_revs; r++)
            if (uses_copy(reg->models[i]->revs[r], rev, source))
                return;
    for (size_t i = 0; i < reg->n_dead; i++)
        if (uses_copy(reg->dead_revs[i], rev, source))
            return;
    char hex[65], path[4096];
    ksv_sha256_digest_hex(source, hex);
    snprintf(path, sizeof path, "%s/%s.ubj", reg->reload_dir, hex);
    if (unlink(path) != 0 && errno != ENOENT)
        ksv_log(KSV_LOG_WARN, NULL, "cannot remove %s: %s", path, strerror(errno));
}

/* Copies left by an earlier run: their digests were in its memory only, so they are of no
 * use (and never read) now. */
static void clear_reload_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n > 4 && strcmp(de->d_name + n - 4, ".ubj") == 0 && de->d_name[0] != '.')
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
}

static void model_free(ksv_engine_model *m)
{
    pthread_mutex_destroy(&m->errors_mu);
    free(m);
}

/* -------------------------------------------------------------- traffic application */

/* Moves the effective split to the desired one when every revision it names is loaded;
 * otherwise starts loading what is missing and leaves the old split serving.
 * Caller holds the write lock. */
static void model_apply_traffic(ksv_registry *reg, ksv_engine_model *m)
{
    bool all_ready = true, need_load = false;
    for (size_t i = 0; i < m->n_revs; i++) {
        ksv_engine_revision *rev = m->revs[i];
        if (rev->desired <= 0)
            continue;
        if (rev->state == KSV_REV_UNLOADED) {
            rev->state = KSV_REV_LOADING;
            need_load = true;
        }
        if (!routable(rev))
            all_ready = false;
    }
    if (need_load)
        wake_lifecycle(reg);
    if (!all_ready) {
        m->pending = true;
        return;
    }
    double now = reg_now_s(reg);
    m->n_split = 0;
    int cumulative = 0;
    for (size_t i = 0; i < m->n_revs; i++) {
        ksv_engine_revision *rev = m->revs[i];
        int old = rev->traffic;
        rev->traffic = rev->desired;
        if (rev->traffic > 0) {
            if (!rev->cold.cold)
                rev->state = KSV_REV_READY;
            cumulative += rev->traffic;
            m->split[m->n_split].rev = rev;
            m->split[m->n_split].cumulative = cumulative;
            m->n_split++;
        } else if (rev->cold.cold) {
            /* Scaled to zero and out of the split: nothing to drain; its waiters route
             * again, to the new split. */
            note_usage(reg, rev, "model-unload", "left-split", 0);
            rev->cold.cold = false;
            if (!rev->cold.loading)
                rev->state = KSV_REV_UNLOADED;
            ksv_cold_wake(&reg->cold_queue, &rev->cold, m->spec.name, rev->spec.name,
                          KSV_COLD_RETRY);
        } else if (old > 0 || rev->state == KSV_REV_READY) {
            rev->state = KSV_REV_DRAINING;
            rev->idle_since = now;
            /* Requests waiting for one of its slots route again, to the new split. */
            ksv_cold_wake(&reg->cold_queue, &rev->cold, m->spec.name, rev->spec.name,
                          KSV_COLD_RETRY);
        }
    }
    m->pending = false;
    /* Revisions the spec no longer lists leave the model once they carry no traffic. */
    size_t kept = 0;
    for (size_t i = 0; i < m->n_revs; i++) {
        ksv_engine_revision *rev = m->revs[i];
        bool listed = false;
        for (size_t j = 0; j < m->spec.n_revisions; j++)
            listed |= strcmp(m->spec.revisions[j].name, rev->spec.name) == 0;
        if (!listed && rev->traffic == 0 &&
            push_ptr((void ***)&reg->dead_revs, &reg->n_dead, &reg->cap_dead, rev)) {
            if (m->mirror == rev)
                m->mirror = NULL; /* a revision leaving the model is mirrored to no more */
            continue;
        }
        m->revs[kept++] = rev;
    }
    m->n_revs = kept;
    wake_lifecycle(reg);
}

/* ------------------------------------------------------------------- persistence */

/* The applied state keeps the storage URIs as given: the engine fetches from them again
 * after a restart. That includes a presigned URL's signature, acceptable in a file the
 * engine writes 0600 into its own state dir; every status document shows the display
 * form instead (write_revision_state). */
static void write_specs_json(ksv_registry *reg, ksv_sb *sb)
{
    ksv_sb_puts(sb, "{\"version\":1,\"models\":[");
    bool first = true;
    for (size_t i = 0; i < reg->n_models; i++) {
        if (reg->models[i]->spec.pinned)
            continue;
        if (!first)
            ksv_sb_putc(sb, ',');
        first = false;
        ksv_model_spec_to_json(sb, &reg->models[i]->spec);
    }
    ksv_sb_puts(sb, "]}\n");
}

/* Caller holds admin_mu (not the registry lock). */
static int persist(ksv_registry *reg, ksv_err *err)
{
    if (!reg->state_file)
        return 0;
    ksv_sb sb;
    ksv_sb_init(&sb);
    pthread_rwlock_rdlock(&reg->lock);
    write_specs_json(reg, &sb);
    pthread_rwlock_unlock(&reg->lock);
    int rc = sb.oom ? ksv_err_set(err, 500, "out of memory writing state")
                    : ksv_write_file_atomic(reg->state_file, sb.data, sb.len, 0600, err);
    ksv_sb_free(&sb);
    if (rc)
        ksv_log(KSV_LOG_ERROR, NULL, "could not save applied state: %s", err->msg);
    return rc;
}

/* ------------------------------------------------------------------ admin changes */

/* Takes a model out of the table; it and its revisions are freed by the janitor once
 * nothing is in flight. Caller holds the write lock. */
static void detach_model(ksv_registry *reg, ksv_engine_model *m)
{
    size_t i = 0;
    while (reg->models[i] != m)
        i++;
    reg->models[i] = reg->models[--reg->n_models];
    m->deleted = true;
    m->n_split = 0;
    for (size_t r = 0; r < m->n_revs; r++) {
        m->revs[r]->traffic = m->revs[r]->desired = 0;
        if (m->revs[r]->fetch_id)
            ksv_fetch_cancel(reg->fetcher, m->revs[r]->fetch_id, "model deleted");
        if (m->revs[r]->cold.cold) {
            note_usage(reg, m->revs[r], "model-unload", "removed", 0);
            m->revs[r]->cold.cold = false;
        }
        /* Its waiters (for a cold start or a slot) hear that the model is gone. */
        ksv_cold_wake(&reg->cold_queue, &m->revs[r]->cold, m->spec.name, m->revs[r]->spec.name,
                      KSV_COLD_RETRY);
        /* On allocation failure the revision leaks rather than being freed in use. */
        push_ptr((void ***)&reg->dead_revs, &reg->n_dead, &reg->cap_dead, m->revs[r]);
    }
    m->n_revs = 0;
    push_ptr((void ***)&reg->dead_models, &reg->n_dead_models, &reg->cap_dead_models, m);
}

/* A revision the new spec no longer lists gets no traffic; one still being fetched or
 * waiting to load will never serve, so its download stops. Caller holds the write lock. */
static void stop_unlisted(ksv_registry *reg, ksv_engine_revision *rev)
{
    rev->desired = 0;
    if (rev->fetch_id)
        ksv_fetch_cancel(reg->fetcher, rev->fetch_id, "revision replaced");
    if (rev->state == KSV_REV_LOADING)
        rev->state = KSV_REV_UNLOADED;
}

static int put_locked(ksv_registry *reg, const ksv_model_spec *spec, ksv_err *err)
{
    ksv_engine_model *m = find_model(reg, spec->name);
    if (m && m->spec.pinned && !spec->pinned)
        return ksv_err_set(err, 409,
                           "model %s is served from the command line (--model/--model-dir); "
                           "restart the engine without it to manage it here",
                           spec->name);
    if (m && spec->pinned && !m->spec.pinned) {
        /* Command-line models win over restored state of the same name. */
        detach_model(reg, m);
        m = NULL;
    }
    for (size_t i = 0; i < spec->n_revisions; i++) {
        if (!ksv_runtime_find(spec->revisions[i].runtime))
            return ksv_err_set(err, 400, "unknown runtime %s", spec->revisions[i].runtime);
        ksv_engine_revision *old = m ? find_revision(m, spec->revisions[i].name) : NULL;
        if (old && !ksv_revision_spec_equal(&old->spec, &spec->revisions[i]))
            return ksv_err_set(err, 409,
                               "revision %s already exists with a different spec: revisions "
                               "are immutable, name a new one",
                               spec->revisions[i].name);
    }
    if (ksv_traffic_validate(spec->traffic, spec->n_revisions, err))
        return -1;
    bool created = false;
    if (!m) {
        m = calloc(1, sizeof *m);
        if (!m)
            return ksv_err_set(err, 500, "out of memory");
        pthread_mutex_init(&m->errors_mu, NULL);
        if (!push_ptr((void ***)&reg->models, &reg->n_models, &reg->cap_models, m)) {
            model_free(m);
            return ksv_err_set(err, 500, "out of memory");
        }
        created = true;
    }
    /* Count the revision structs the model will hold before changing anything. */
    size_t needed = 0;
    for (size_t i = 0; i < m->n_revs; i++) {
        bool listed = false;
        for (size_t j = 0; j < spec->n_revisions; j++)
            listed |= strcmp(spec->revisions[j].name, m->revs[i]->spec.name) == 0;
        needed += !listed;
    }
    needed += spec->n_revisions;
    if (needed > MAX_MODEL_REVS)
        return ksv_err_set(err, 409, "model %s: too many revisions still draining; retry",
                           spec->name);
    for (size_t i = 0; i < spec->n_revisions; i++) {
        ksv_engine_revision *rev = find_revision(m, spec->revisions[i].name);
        if (!rev) {
            rev = revision_new(reg, m, &spec->revisions[i]);
            if (!rev) {
                if (created)
                    reg->n_models--;
                return ksv_err_set(err, 500, "out of memory");
            }
            m->revs[m->n_revs++] = rev;
        } else if (rev->state == KSV_REV_FAILED) {
            rev->state = KSV_REV_LOADING; /* applying it again retries the load */
        }
        rev->desired = spec->traffic[i];
    }
    for (size_t i = 0; i < m->n_revs; i++) {
        bool listed = false;
        for (size_t j = 0; j < spec->n_revisions; j++)
            listed |= strcmp(spec->revisions[j].name, m->revs[i]->spec.name) == 0;
        if (!listed)
            stop_unlisted(reg, m->revs[i]);
    }
    m->spec = *spec;
    for (size_t i = 0; i < m->n_revs; i++)
        atomic_store(&m->revs[i]->idle_gap_ns, idle_gap_ns(&m->spec));
    /* A re-applied revision keeps the commit it was pinned to. */
    for (size_t i = 0; i < m->spec.n_revisions; i++) {
        ksv_engine_revision *rev = find_revision(m, m->spec.revisions[i].name);
        if (rev && rev->spec.pinned_uri[0])
            snprintf(m->spec.revisions[i].pinned_uri, sizeof m->spec.revisions[i].pinned_uri,
                     "%s", rev->spec.pinned_uri);
        else if (rev && m->spec.revisions[i].pinned_uri[0])
            snprintf(rev->spec.pinned_uri, sizeof rev->spec.pinned_uri, "%s",
                     m->spec.revisions[i].pinned_uri);
    }
    model_apply_traffic(reg, m);
    wake_lifecycle(reg);
    return 0;
}

int ksv_registry_put(ksv_registry *reg, const ksv_model_spec *spec, ksv_err *err)
{
    pthread_mutex_lock(&reg->admin_mu);
    pthread_rwlock_wrlock(&reg->lock);
    int rc = put_locked(reg, spec, err);
    pthread_rwlock_unlock(&reg->lock);
    if (rc == 0 && !spec->pinned)
        rc = persist(reg, err);
    pthread_mutex_unlock(&reg->admin_mu);
    if (rc == 0)
        ksv_log(KSV_LOG_INFO, NULL, "model %s: %zu revision(s) applied", spec->name,
                spec->n_revisions);
    return rc;
}

int ksv_registry_set_traffic(ksv_registry *reg, const char *model, json_object *body,
                             ksv_err *err)
{
    pthread_mutex_lock(&reg->admin_mu);
    pthread_rwlock_wrlock(&reg->lock);
    int rc;
    ksv_engine_model *m = find_model(reg, model);
    if (!m) {
        rc = ksv_err_set(err, 404, "model %s not found", model);
    } else if (m->spec.pinned) {
        rc = ksv_err_set(err, 409, "model %s is served from the command line; its traffic "
                                   "cannot change", model);
    } else {
        ksv_model_spec spec = m->spec;
        rc = ksv_traffic_from_json(body, &spec, spec.traffic, err);
        if (rc == 0)
            rc = put_locked(reg, &spec, err);
    }
    pthread_rwlock_unlock(&reg->lock);
    if (rc == 0)
        rc = persist(reg, err);
    pthread_mutex_unlock(&reg->admin_mu);
    return rc;
}

int ksv_registry_delete(ksv_registry *reg, const char *model, ksv_err *err)
{
    pthread_mutex_lock(&reg->admin_mu);
    pthread_rwlock_wrlock(&reg->lock);
    int rc = 0;
    ksv_engine_model *m = find_model(reg, model);
    if (!m) {
        rc = ksv_err_set(err, 404, "model %s not found", model);
    } else if (m->spec.pinned) {
        rc = ksv_err_set(err, 409, "model %s is served from the command line; it cannot be "
                                   "deleted here", model);
    } else {
        detach_model(reg, m);
    }
    pthread_rwlock_unlock(&reg->lock);
    if (rc == 0)
        rc = persist(reg, err);
    pthread_mutex_unlock(&reg->admin_mu);
    if (rc == 0) {
        ksv_log(KSV_LOG_INFO, NULL, "model %s deleted", model);
        wake_lifecycle(reg);
    }
    return rc;
}

int ksv_registry_take_out(ksv_registry *reg, const char *model, ksv_model_spec *spec,
                          ksv_err *err)
{
    pthread_mutex_lock(&reg->admin_mu);
    pthread_rwlock_wrlock(&reg->lock);
    int rc = 0;
    ksv_engine_model *m = find_model(reg, model);
    bool pinned = false;
    if (!m) {
        rc = ksv_err_set(err, 404, "model %s not found", model);
    } else {
        *spec = m->spec;
        pinned = m->spec.pinned;
        detach_model(reg, m);
    }
    pthread_rwlock_unlock(&reg->lock);
    if (rc == 0 && !pinned)
        rc = persist(reg, err);
    pthread_mutex_unlock(&reg->admin_mu);
    if (rc == 0) {
        ksv_log(KSV_LOG_INFO, NULL, "model %s unloaded through the repository API", model);
        wake_lifecycle(reg);
    }
    return rc;
}

/* --------------------------------------------------------------- lifecycle thread */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* A scaled-to-zero revision a request asked for, not being loaded yet. A failed cold start
 * is retried by the next request once a few seconds have passed. */
static bool cold_start_wanted(const ksv_engine_revision *rev)
{
    return rev->cold.cold && !rev->loader_busy && atomic_load(&rev->cold.requested_ns) != 0 &&
           (rev->state == KSV_REV_SCALED_TO_ZERO || rev->state == KSV_REV_FAILED);
}

static void cold_start_done(ksv_engine_revision *rev)
{
    ksv_cold_started(&rev->cold);
    ksv_log(KSV_LOG_INFO, NULL, "revision %s: cold start done (%d request(s) waited)",
            rev->spec.name, atomic_load(&rev->cold.queue_depth));
}

/* A cold start that failed (download or load): its waiters hear why, and the next request
 * after COLD_RETRY_S tries again. Caller holds the write lock. */
static void cold_load_failed(ksv_registry *reg, ksv_engine_revision *rev)
{
    rev->cold.loading = false;
    rev->cold.failed_at = ksv_mono_s();
    atomic_store(&rev->cold.requested_ns, 0);
    ksv_cold_wake(&reg->cold_queue, &rev->cold, rev->model->spec.name, rev->spec.name,
                  KSV_COLD_RETRY);
}

/* min_replicas 0, serving, nothing in flight, idle for the model's window plus retention:
 * time to scale to zero. Caller holds the lock. */
static bool idle_to_zero(const ksv_engine_model *m, const ksv_engine_revision *rev, double now)
{
    return rev->spec.min_replicas == 0 && rev->state == KSV_REV_READY && rev->handle &&
           !rev->cold.cold && !rev->loader_busy && !rev->held_warm &&
           atomic_load(&rev->inflight) == 0 &&
           ksv_cold_idle_seconds(&rev->cold, now) >= ksv_cold_idle_limit(&m->spec);
}

/* ------------------------------------------------------------ memory budget */

#define MAX_EVICTIONS 64

/* Host (or GPU) memory the loaded revisions hold, removed ones still finishing requests
 * included. */
static uint64_t memory_in_use(ksv_registry *reg, bool gpu)
{
    uint64_t used = 0;
    for (size_t i = 0; i < reg->n_models; i++)
        for (size_t r = 0; r < reg->models[i]->n_revs; r++) {
            const ksv_engine_revision *rev = reg->models[i]->revs[r];
            used += gpu ? rev->gpu_memory_bytes : rev->memory_bytes;
        }
    for (size_t i = 0; i < reg->n_dead; i++)
        used += gpu ? reg->dead_revs[i]->gpu_memory_bytes : reg->dead_revs[i]->memory_bytes;
    return used;
}

/* The GPU memory a loaded revision holds: what its spec declares (resources.limits
 * ksv.io/gpu-memory); with none declared, a revision whose runtime is ksv-forest by name,
 * running on the GPU, holds about its host layout again on the device (one that `auto`
 * chose is not estimated). A node without a GPU accounts the declared figure
 * all the same (the budget is then a simulation: tests say so). */
static uint64_t gpu_bytes_of(const ksv_engine_revision *rev, void *handle, uint64_t host_bytes)
{
    if (rev->spec.gpu_memory_bytes > 0)
        return (uint64_t)rev->spec.gpu_memory_bytes;
    /* Only a handle ksv-forest made itself (`auto` wraps its choice in its own handle). */
    if (handle && rev->ops == ksv_runtime_find("ksv-forest") &&
        ksv_runtime_forest_on_gpu(handle))
        return host_bytes;
    return 0;
}

/* May be unloaded to make room: allowed to scale to zero, loaded, idle this instant. */
static bool evictable(const ksv_engine_revision *rev)
{
    return rev->spec.min_replicas == 0 && rev->handle && !rev->loader_busy &&
           !rev->held_warm && atomic_load(&rev->inflight) == 0 &&
           ((rev->state == KSV_REV_READY && !rev->cold.cold) || rev->state == KSV_REV_STANDBY);
}

/* Makes room for `need` host and `need_gpu` GPU bytes for revision `for_rev`, unloading
 * revisions allowed to scale to zero, least recently used first: a serving one scales to
 * zero (its next request is a cold start), a standby one unloads. Their runtimes go to
 * items[] for the caller to unload outside the lock. Returns 0, or -1 with the budget
 * message when even all of them would not make room (then none is touched). Caller holds
 * the write lock. */
static int make_room(ksv_registry *reg, const ksv_engine_revision *for_rev, uint64_t need,
                     uint64_t need_gpu, unload_item *items, size_t *n_items, ksv_err *err)
{
    if (!reg->memory_budget && !reg->gpu_memory_budget)
        return 0;
    ksv_mem_candidate cand[MAX_EVICTIONS];
    size_t n = 0;
    for (size_t i = 0; i < reg->n_models; i++)
        for (size_t r = 0; r < reg->models[i]->n_revs && n < MAX_EVICTIONS - *n_items; r++) {
            ksv_engine_revision *rev = reg->models[i]->revs[r];
            if (rev != for_rev && evictable(rev))
                cand[n++] = (ksv_mem_candidate){rev, rev->memory_bytes, rev->gpu_memory_bytes,
                                                atomic_load(&rev->cold.last_active_ns)};
        }
    ksv_mem_pool host = {reg->memory_budget, memory_in_use(reg, false), need};
    ksv_mem_pool gpu = {reg->gpu_memory_budget, memory_in_use(reg, true), need_gpu};
    bool gpu_short;
    int k = ksv_mem_plan_eviction(cand, n, &host, &gpu, &gpu_short);
    if (k < 0)
        return ksv_mem_budget_error(err, gpu_short ? "gpu" : "cpu", gpu_short ? &gpu : &host);
    for (int v = 0; v < k; v++) {
        ksv_engine_revision *rev = cand[v].owner;
        note_usage(reg, rev, rev->state == KSV_REV_READY ? "scale-to-zero" : "model-unload",
                   "memory-budget", rev->memory_bytes);
        take_runtime(rev, &items[(*n_items)++]);
        if (rev->state == KSV_REV_READY) {
            rev->cold.cold = true; /* keeps its traffic; the next request starts it */
            rev->state = KSV_REV_SCALED_TO_ZERO;
        } else {
            rev->state = KSV_REV_UNLOADED;
        }
        ksv_log(KSV_LOG_INFO, NULL, "revision %s unloaded to make room for %s (memory budget)",
                rev->spec.name, for_rev->spec.name);
    }
    return 0;
}

/* After a load: the measured size against the revision's own limit, then the node's
 * budget. Caller holds the write lock. */
static int admit_measured(ksv_registry *reg, const ksv_engine_revision *rev, uint64_t measured,
                          uint64_t gpu, unload_item *items, size_t *n_items, ksv_err *err)
{
    if (rev->spec.memory_limit_bytes > 0 && measured > (uint64_t)rev->spec.memory_limit_bytes) {
        char took[32], limit[32];
        ksv_mem_format(measured, took, sizeof took);
        ksv_mem_format((uint64_t)rev->spec.memory_limit_bytes, limit, sizeof limit);
        return ksv_err_set(err, 503, "memory limit: the model takes %s, over its "
                                     "resources.limits.memory of %s", took, limit);
    }
    return make_room(reg, rev, measured, gpu, items, n_items, err);
}

static void unload_evicted(unload_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        unload(&items[i]);
    if (n > 0)
        ksv_mem_return_to_system();
}

typedef struct fetch_ticket {
    ksv_registry *reg;
    ksv_engine_revision *rev;            /* kept alive while its fetch_id is set (see janitor) */
} fetch_ticket;

/* Records the commit an hf:// revision resolved to, in the revision and in its model's
 * spec (which the applied state is written from). Caller holds the write lock. */
static bool pin_revision(ksv_engine_revision *rev, const char *pinned)
{
    if (strlen(pinned) >= sizeof rev->spec.pinned_uri)
        return false;
    snprintf(rev->spec.pinned_uri, sizeof rev->spec.pinned_uri, "%s", pinned);
    ksv_model_spec *ms = &rev->model->spec;
    for (size_t i = 0; i < ms->n_revisions; i++)
        if (strcmp(ms->revisions[i].name, rev->spec.name) == 0)
            snprintf(ms->revisions[i].pinned_uri, sizeof ms->revisions[i].pinned_uri, "%s",
                     pinned);
    ksv_log(KSV_LOG_INFO, NULL, "revision %s: pinned to %s", rev->spec.name, pinned);
    return true;
}

/* Runs on a fetch pool thread when a download ends. */
static void fetch_done(void *user, uint64_t id, int rc, const ksv_fetch_result *res,
                       const ksv_err *err)
{
    fetch_ticket *t = user;
    ksv_registry *reg = t->reg;
    ksv_engine_revision *rev = t->rev;
    free(t);
    const char *unpin = rc == 0 ? res->tree : NULL;
    char old_pin[65] = "";
    bool pinned_now = false;
    pthread_rwlock_wrlock(&reg->lock);
    if (rev->fetch_id == id) {
        rev->fetch_id = 0;
        /* A revision replaced or deleted meanwhile no longer waits for the file. */
        bool waiting = rev->state == KSV_REV_LOADING && !rev->model->deleted;
        if (rc == 0 && waiting && !(rev->fetched_path = strdup(res->path)))
            err = NULL;
        if (rev->fetched_path && res->pinned[0] && !rev->spec.pinned_uri[0])
            pinned_now = pin_revision(rev, res->pinned);
        if (rev->fetched_path) {
            /* The revision holds this tree from now on (and lets go of the one before). */
            snprintf(old_pin, sizeof old_pin, "%s", rev->cache_tree);
            snprintf(rev->cache_tree, sizeof rev->cache_tree, "%s", res->tree);
            unpin = old_pin;
        }
        if (waiting && !rev->fetched_path) {
            rev->state = KSV_REV_FAILED;
            snprintf(rev->error, sizeof rev->error, "%s", err ? err->msg : "out of memory");
            ksv_log(KSV_LOG_ERROR, NULL, "revision %s: %s", rev->spec.name, rev->error);
            if (rev->cold.cold)
                cold_load_failed(reg, rev);
        } else if (rc != 0) {
            ksv_log(KSV_LOG_INFO, NULL, "revision %s: %s", rev->spec.name, err->msg);
        }
    }
    pthread_rwlock_unlock(&reg->lock);
    ksv_cache_unpin(reg->cache, unpin);
    if (pinned_now) {
        ksv_err perr;
        pthread_mutex_lock(&reg->admin_mu);
        persist(reg, &perr);
        pthread_mutex_unlock(&reg->admin_mu);
    }
    wake_lifecycle(reg);
}

/* Hands a revision's download to the fetch pool. Caller holds the write lock. */
static void start_fetch(ksv_registry *reg, ksv_engine_revision *rev)
{
    ksv_err err;
    fetch_ticket *t = malloc(sizeof *t);
    if (!t) {
        rev->state = KSV_REV_FAILED;
        snprintf(rev->error, sizeof rev->error, "out of memory");
        return;
    }
    *t = (fetch_ticket){reg, rev};
    rev->fetch_id = ksv_fetch_submit(reg->fetcher,
                                     rev->spec.pinned_uri[0] ? rev->spec.pinned_uri
                                                             : rev->spec.storage_uri,
                                     rev->spec.sha256, rev->ops->proxied, &rev->download,
                                     fetch_done, t, &err);
    if (!rev->fetch_id) {
        free(t);
        rev->state = KSV_REV_FAILED;
        snprintf(rev->error, sizeof rev->error, "%s", err.msg);
    }
}

/* One runtime load, run on a thread of its own so that its size is measured without the
 * allocator's per-thread cache (ksv_mem_measure). */
typedef struct load_call {
    const ksv_runtime_ops *ops;
    const char *path;
    const ksv_runtime_options *opts;
    void **handle;
    ksv_model_info *info;
    ksv_err *err;
    int rc;
} load_call;

static void run_load(void *arg)
{
    load_call *c = arg;
    c->rc = c->ops->load(c->path, c->opts, c->handle, c->info, c->err);
}

/* Loads one revision in state loading, if any; a revision whose model must be downloaded
 * first is handed to the fetch pool instead and comes back here when the download ends.
 * Returns true when it did some work. */
static bool load_one(ksv_registry *reg)
{
    ksv_engine_revision *rev = NULL;
    pthread_rwlock_wrlock(&reg->lock);
    /* Cold starts first: requests are waiting for them. */
    for (size_t i = 0; i < reg->n_models && !rev; i++) {
        ksv_engine_model *m = reg->models[i];
        for (size_t r = 0; r < m->n_revs && !rev; r++)
            if (cold_start_wanted(m->revs[r]))
                rev = m->revs[r];
    }
    if (rev) {
        rev->state = KSV_REV_LOADING;
        rev->cold.loading = true;
    }
    for (size_t i = 0; i < reg->n_models && !rev; i++) {
        ksv_engine_model *m = reg->models[i];
        for (size_t r = 0; r < m->n_revs && !rev; r++)
            if (m->revs[r]->state == KSV_REV_LOADING && !m->revs[r]->loader_busy &&
                !m->revs[r]->fetch_id)
                rev = m->revs[r];
    }
    if (!rev) {
        pthread_rwlock_unlock(&reg->lock);
        return false;
    }
    if (ksv_storage_is_remote(rev->spec.storage_uri) && !rev->fetched_path) {
        start_fetch(reg, rev);
        pthread_rwlock_unlock(&reg->lock);
        return true;
    }
    /* A revision measured before (or one that declares its GPU memory) must fit before it
     * loads. */
    unload_item evicted[MAX_EVICTIONS];
    size_t n_evicted = 0;
    ksv_err err;
    ksv_err_clear(&err);
    if ((rev->last_memory_bytes || rev->spec.gpu_memory_bytes > 0) &&
        make_room(reg, rev, rev->last_memory_bytes,
                  (uint64_t)(rev->spec.gpu_memory_bytes > 0 ? rev->spec.gpu_memory_bytes : 0),
                  evicted, &n_evicted, &err) != 0) {
        rev->state = KSV_REV_FAILED;
        rev->cold.loading = false;
        snprintf(rev->error, sizeof rev->error, "%s", err.msg);
        if (rev->cold.cold)
            cold_load_failed(reg, rev);
        pthread_rwlock_unlock(&reg->lock);
        ksv_log(KSV_LOG_ERROR, NULL, "revision %s not loaded: %s", rev->spec.name, err.msg);
        return true;
    }
    rev->loader_busy = true;
    ksv_revision_spec spec = rev->spec;
    const ksv_runtime_ops *ops = rev->ops;
    char *fetched = rev->fetched_path;
    rev->fetched_path = NULL; /* each load of a downloaded model checks the cache again */
    char model_name[KSV_NAME_MAX];
    snprintf(model_name, sizeof model_name, "%s", rev->model->spec.name);
    uint8_t checked[32], copy[32];
    bool has_checked = rev->has_checked_sha256, has_copy = rev->has_reload_sha256;
    memcpy(checked, rev->checked_sha256, sizeof checked);
    memcpy(copy, rev->reload_sha256, sizeof copy);
    pthread_rwlock_unlock(&reg->lock);

    char path[4096];
    void *handle = NULL;
    ksv_model_info info;
    memset(&info, 0, sizeof info);
    ksv_runtime_options opts = {
        .workers = reg->workers + 1, /* the last index is the mirror thread's */
        .predict_threads = spec.predict_threads,
        .booster_pool = spec.booster_pool,
        .gpu = reg->gpu,
        .external = spec.external,
        .model_name = model_name,
        .revision = spec.name,
        .checked_sha256 = has_checked ? checked : NULL,
        .reload_dir = reg->reload_dir,
        .reload_sha256 = has_copy ? copy : NULL,
    };
    double t0 = ksv_mono_s();
    int rc = 0;
    /* A fetched model is a folder in the cache, resolved as a local folder is; an external
     * runtime's model is any file or folder (the runtime reads it, not the engine), the
     * downloaded one included. */
    if (ops->proxied)
        rc = fetched ? ksv_ext_fetched_path(fetched, path, sizeof path, &err)
                     : ksv_ext_model_path(spec.storage_uri, path, sizeof path, &err);
    else
        rc = ksv_storage_resolve_local(fetched ? fetched : spec.storage_uri, path, sizeof path,
                                       &err);
    free(fetched);
    if (rc == 0 && reg->load_delay_ms > 0)
        sleep_ms(reg->load_delay_ms);
    load_call call = {ops, path, &opts, &handle, &info, &err, -1};
    uint64_t mem_used = rc == 0 ? ksv_mem_measure(run_load, &call) : 0;
    if (rc == 0)
        rc = call.rc;
    double took = ksv_mono_s() - t0;
    ksv_batcher *batcher = NULL;
    size_t batch_rows = spec.batch_max_rows > 1                             ? (size_t)spec.batch_max_rows
                        : spec.batch_max_rows == 0 && info.prefers_batches ? KSV_BATCH_DEFAULT_MAX_ROWS
                                                                            : 0;
    ksv_err berr;
    if (rc == 0 && batch_rows > 0 &&
        ksv_batcher_create(batch_rows, (unsigned)spec.batch_max_delay_us, info.num_features,
                           info.num_outputs, &batcher, &berr) != 0)
        ksv_log(KSV_LOG_WARN, NULL, "revision %s: no batching: %s", spec.name, berr.msg);

    pthread_rwlock_wrlock(&reg->lock);
    rev->loader_busy = false;
    bool dead = false;
    for (size_t i = 0; i < reg->n_dead; i++)
        dead |= reg->dead_revs[i] == rev;
    bool cold_load = rev->cold.loading;
    rev->cold.loading = false;
    uint64_t gpu_used = rc == 0 ? gpu_bytes_of(rev, handle, mem_used) : 0;
    if (rc == 0 && !dead) {
        rev->last_memory_bytes = mem_used;
        if (rev->has_reload_sha256 &&
            memcmp(rev->checked_sha256, info.checked_sha256, sizeof rev->checked_sha256) != 0)
            drop_reload_copy(reg, rev, rev->checked_sha256); /* its file changed */
        rev->has_checked_sha256 = info.has_checked_sha256;
        memcpy(rev->checked_sha256, info.checked_sha256, sizeof rev->checked_sha256);
        rev->has_reload_sha256 = info.has_reload_sha256;
        memcpy(rev->reload_sha256, info.reload_sha256, sizeof rev->reload_sha256);
        rc = admit_measured(reg, rev, mem_used, gpu_used, evicted, &n_evicted, &err);
    }
    if (rc == 0 && !dead) {
        rev->handle = handle;
        rev->batcher = batcher;
        batcher = NULL;
        rev->info = info;
        rev->load_seconds = took;
        rev->memory_bytes = mem_used;
        rev->gpu_memory_bytes = gpu_used;
        rev->error[0] = '\0';
        rev->state = rev->desired > 0 ? KSV_REV_READY : KSV_REV_STANDBY;
        rev->idle_since = reg_now_s(reg);
        handle = NULL;
        bool woke = rev->cold.cold || cold_load;
        if (woke)
            cold_start_done(rev);
        rev->cold.cold = false;
        /* The idle window starts when it is ready. */
        note_usage(reg, rev, woke ? "cold-start" : "model-load", woke ? "cold-start" : "load",
                   mem_used);
        model_apply_traffic(reg, rev->model);
    } else if (rc != 0) {
        rev->state = KSV_REV_FAILED;
        snprintf(rev->error, sizeof rev->error, "%s", err.msg);
        if (rev->cold.cold && !dead)
            cold_load_failed(reg, rev);
    }
    /* A loaded cold start: the requests waiting for it route again, to it. */
    if (rc == 0 && !dead && cold_load)
        ksv_cold_wake(&reg->cold_queue, &rev->cold, rev->model->spec.name, rev->spec.name,
                      KSV_COLD_RETRY);
    pthread_rwlock_unlock(&reg->lock);
    unload_evicted(evicted, n_evicted);
    ksv_batcher_destroy(batcher);
    if (handle)
        ops->unload(handle); /* loaded for a revision deleted meanwhile */
    if (rc == 0)
        ksv_log(KSV_LOG_INFO, NULL, "revision %s loaded in %.3f s (%zu features, %s)",
                spec.name, took, info.num_features, info.objective);
    else
        ksv_log(KSV_LOG_ERROR, NULL, "revision %s failed to load: %s", spec.name, err.msg);
    /* A failed (or replaced) load freed what it built, but glibc keeps freed heap in its
     * arenas: a hostile model once left 2.2 GB held after its load failed. */
    if (rc != 0 || handle)
        malloc_trim(0);
    return true;
}

/* Drained revisions go to standby, expired standbys unload, dead revisions and models
 * with nothing in flight are freed. */
static void janitor(ksv_registry *reg)
{
    double now = reg_now_s(reg);
    bool work = false;
    pthread_rwlock_rdlock(&reg->lock);
    for (size_t i = 0; i < reg->n_dead && !work; i++)
        work = atomic_load(&reg->dead_revs[i]->inflight) == 0 &&
               !reg->dead_revs[i]->loader_busy && !reg->dead_revs[i]->fetch_id;
    work |= reg->n_dead_models > 0;
    for (size_t i = 0; i < reg->n_models && !work; i++) {
        ksv_engine_model *m = reg->models[i];
        for (size_t r = 0; r < m->n_revs && !work; r++) {
            ksv_engine_revision *rev = m->revs[r];
            work = (rev->state == KSV_REV_DRAINING && atomic_load(&rev->inflight) == 0) ||
                   (rev->state == KSV_REV_STANDBY && !rev->held_warm &&
                    now - rev->idle_since >= m->spec.rollback_window_s) ||
                   idle_to_zero(m, rev, now);
        }
    }
    pthread_rwlock_unlock(&reg->lock);
    if (!work)
        return;

    unload_item items[64];
    size_t n_items = 0;
    pthread_rwlock_wrlock(&reg->lock);
    for (size_t i = 0; i < reg->n_models; i++) {
        ksv_engine_model *m = reg->models[i];
        for (size_t r = 0; r < m->n_revs; r++) {
            ksv_engine_revision *rev = m->revs[r];
            if (rev->state == KSV_REV_DRAINING && atomic_load(&rev->inflight) == 0) {
                rev->state = KSV_REV_STANDBY;
                ksv_log(KSV_LOG_INFO, NULL, "revision %s drained; standby for %d s",
                        rev->spec.name, m->spec.rollback_window_s);
            }
            if (rev->state == KSV_REV_STANDBY && rev->traffic == 0 && !rev->held_warm &&
                now - rev->idle_since >= m->spec.rollback_window_s &&
                atomic_load(&rev->inflight) == 0 && n_items < 64) {
                note_usage(reg, rev, "model-unload", "rollback-window", rev->memory_bytes);
                take_runtime(rev, &items[n_items++]);
                rev->state = KSV_REV_UNLOADED;
                ksv_log(KSV_LOG_INFO, NULL, "revision %s unloaded (rollback window over)",
                        rev->spec.name);
            }
            if (idle_to_zero(m, rev, now) && n_items < 64) {
                note_usage(reg, rev, "scale-to-zero", "idle", rev->memory_bytes);
                take_runtime(rev, &items[n_items++]);
                rev->cold.cold = true; /* keeps its place in the split and its info */
                rev->state = KSV_REV_SCALED_TO_ZERO;
                ksv_log(KSV_LOG_INFO, NULL,
                        "revision %s scaled to zero after %.0f s without requests",
                        rev->spec.name, ksv_cold_idle_limit(&m->spec));
            }
        }
    }
    size_t kept = 0;
    for (size_t i = 0; i < reg->n_dead; i++) {
        ksv_engine_revision *rev = reg->dead_revs[i];
        if (atomic_load(&rev->inflight) == 0 && !rev->loader_busy && !rev->fetch_id &&
            n_items < 64) {
            if (rev->handle)
                note_usage(reg, rev, "model-unload", "removed", rev->memory_bytes);
            drop_reload_copy(reg, rev, rev->checked_sha256);
            revision_free(reg, rev, &items[n_items]);
            /* drop_reload_copy scans dead_revs up to n_dead, this slot included, until
             * the compaction below ends: no freed pointer may stay in it. */
            reg->dead_revs[i] = NULL;
            n_items++;
        } else {
            reg->dead_revs[kept++] = rev;
        }
    }
    reg->n_dead = kept;
    kept = 0;
    for (size_t i = 0; i < reg->n_dead_models; i++) {
        ksv_engine_model *m = reg->dead_models[i];
        if (m->rev_structs == 0)
            model_free(m);
        else
            reg->dead_models[kept++] = m;
    }
    reg->n_dead_models = kept;
    pthread_rwlock_unlock(&reg->lock);
    for (size_t i = 0; i < n_items; i++)
        unload(&items[i]);
    if (n_items > 0)
        ksv_mem_return_to_system();
}

/* One autoscaler sample for every loaded revision: requests in flight (and those waiting
 * for a slot, or refused past the queue since the last sample, whose demand must be seen
 * too). Only this thread
 * starts, ticks and stops autoscalers, so the read lock is enough. */
static void autoscale(ksv_registry *reg)
{
    double now = reg_now_s(reg);
    pthread_rwlock_rdlock(&reg->lock);
    for (size_t i = 0; i < reg->n_models; i++)
        for (size_t r = 0; r < reg->models[i]->n_revs; r++) {
            ksv_engine_revision *rev = reg->models[i]->revs[r];
            if (!rev->handle || !rev->kpa.ring)
                continue;
            double demand = (double)atomic_load(&rev->inflight) +
                            (double)atomic_load(&rev->cold.capacity_depth) +
                            (double)atomic_exchange(&rev->refused_at_limit, 0);
            ksv_kpa_params p = kpa_params(rev);
            ksv_kpa_tick(&rev->kpa, &p, now, demand, answers(rev));
            grant_slots(reg, rev); /* a replica more: room for the waiting */
        }
    pthread_rwlock_unlock(&reg->lock);
}

/* A waiting request whose deadline passed: counted as a 503 of its revision. Called with
 * the registry lock (read) and the queue mutex held. */
static void cold_timed_out(void *ctx, const ksv_cold_waiter *w)
{
    ksv_registry *reg = ctx;
    ksv_engine_model *m = find_model(reg, w->model);
    ksv_engine_revision *rev = m ? find_revision(m, w->revision) : NULL;
    if (!rev) {
        for (size_t i = 0; i < reg->n_dead && !rev; i++)
            if (strcmp(reg->dead_revs[i]->spec.name, w->revision) == 0 &&
                strcmp(reg->dead_revs[i]->model->spec.name, w->model) == 0)
                rev = reg->dead_revs[i];
    }
    if (!rev)
        return;
    atomic_fetch_sub(w->for_capacity ? &rev->cold.capacity_depth : &rev->cold.queue_depth, 1);
    atomic_fetch_add_explicit(&rev->codes[ksv_code_slot(503)], 1, memory_order_relaxed);
    push_error(rev->model, 503, rev->spec.name, NULL,
               w->for_capacity ? "timed out waiting for a free slot at the concurrency limit"
                               : "timed out waiting for a cold start");
}

static void expire_cold_waiters(void *ctx)
{
    ksv_registry *reg = ctx;
    pthread_rwlock_rdlock(&reg->lock);
    ksv_cold_expire(&reg->cold_queue, ksv_mono_s(), cold_timed_out, reg);
    pthread_rwlock_unlock(&reg->lock);
}

static void *lifecycle_main(void *arg)
{
    ksv_registry *reg = arg;
    for (;;) {
        pthread_mutex_lock(&reg->lc_mu);
        bool stop = reg->lc_stop;
        reg->lc_wake = false;
        pthread_mutex_unlock(&reg->lc_mu);
        if (stop)
            break;
        bool busy = load_one(reg);
        janitor(reg);
        autoscale(reg);
        ksv_usage_flush(&reg->usage, reg->events); /* outside the registry lock */
        if (busy)
            continue;
        pthread_mutex_lock(&reg->lc_mu);
        if (!reg->lc_wake && !reg->lc_stop) {
            /* drain checks need no faster tick */
            struct timespec until = ksv_timespec_in(CLOCK_REALTIME, 0.1);
            pthread_cond_timedwait(&reg->lc_cond, &reg->lc_mu, &until);
        }
        pthread_mutex_unlock(&reg->lc_mu);
    }
    return NULL;
}

/* --------------------------------------------------------------- create / destroy */

int ksv_registry_create(const ksv_registry_config *cfg, ksv_registry **out, ksv_err *err)
{
    ksv_registry *reg = calloc(1, sizeof *reg);
    if (!reg)
        return ksv_err_set(err, 500, "out of memory");
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* Admin changes must not starve behind a steady stream of readers. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&reg->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&reg->admin_mu, NULL);
    pthread_mutex_init(&reg->lc_mu, NULL);
    pthread_cond_init(&reg->lc_cond, NULL);
    reg->workers = cfg->workers ? cfg->workers : 1;
    reg->gpu = cfg->gpu;
    reg->load_delay_ms = cfg->load_delay_ms;
    reg->memory_budget = cfg->memory_budget;
    reg->gpu_memory_budget = cfg->gpu_memory_budget;
    ksv_cold_queue_init(&reg->cold_queue);
    ksv_usage_init(&reg->usage);
    reg->events = cfg->events;
    reg->clock = cfg->clock;
    if (cfg->reload_dir) {
        ksv_err derr;
        ksv_err_clear(&derr);
        if (ksv_mkdir_p(cfg->reload_dir, 0700, &derr) == 0 &&
            (reg->reload_dir = strdup(cfg->reload_dir)) != NULL)
            clear_reload_dir(reg->reload_dir);
        else
            ksv_log(KSV_LOG_WARN, NULL, "no fast-reload copies for cold starts: %s",
                    derr.msg[0] ? derr.msg : "out of memory");
    }
    if (cfg->state_file && !(reg->state_file = strdup(cfg->state_file))) {
        ksv_registry_destroy(reg);
        return ksv_err_set(err, 500, "out of memory");
    }
    if (cfg->cache_dir && ksv_cache_open(cfg->cache_dir, cfg->cache_max, &reg->cache, err) != 0) {
        ksv_registry_destroy(reg);
        return -1;
    }
    ksv_fetch_pool_config fcfg = {
        .threads = cfg->fetch_threads ? cfg->fetch_threads : 4,
        .deadline_s = cfg->fetch_timeout_s,
        .stall_s = cfg->fetch_stall_s,
        .max_bytes = cfg->max_model_bytes,
        .cache = reg->cache,
    };
    if (ksv_fetch_pool_create(&fcfg, &reg->fetcher, err) != 0 ||
        ksv_pulls_create(reg->fetcher, reg->cache, &reg->pulls, err) != 0) {
        ksv_registry_destroy(reg);
        return -1;
    }
    if (ksv_cold_queue_start(&reg->cold_queue, expire_cold_waiters, reg) != 0) {
        ksv_registry_destroy(reg);
        return ksv_err_set(err, 500, "cannot start the cold-start queue's thread");
    }
    if (pthread_create(&reg->lifecycle, NULL, lifecycle_main, reg) != 0) {
        ksv_registry_destroy(reg);
        return ksv_err_set(err, 500, "cannot start the lifecycle thread");
    }
    reg->lc_started = true;
    *out = reg;
    return 0;
}

void ksv_registry_destroy(ksv_registry *reg)
{
    if (!reg)
        return;
    if (reg->lc_started) {
        pthread_mutex_lock(&reg->lc_mu);
        reg->lc_stop = true;
        pthread_cond_signal(&reg->lc_cond);
        pthread_mutex_unlock(&reg->lc_mu);
        pthread_join(reg->lifecycle, NULL);
    }
    /* Every download is cancelled and its thread joined before revisions are freed. */
    ksv_fetch_pool_destroy(reg->fetcher);
    ksv_pulls_destroy(reg->pulls); /* after the pool: its jobs report into the pulls */
    ksv_cold_queue_destroy(&reg->cold_queue); /* its thread uses the registry lock */
    /* Each residency (and time at zero) ends here, in the log. */
    for (size_t i = 0; i < reg->n_models; i++)
        for (size_t r = 0; r < reg->models[i]->n_revs; r++) {
            ksv_engine_revision *rev = reg->models[i]->revs[r];
            if (rev->handle || rev->cold.cold)
                note_usage(reg, rev, "model-unload", "shutdown", rev->memory_bytes);
        }
    for (size_t i = 0; i < reg->n_dead; i++)
        if (reg->dead_revs[i]->handle)
            note_usage(reg, reg->dead_revs[i], "model-unload", "shutdown",
                       reg->dead_revs[i]->memory_bytes);
    ksv_usage_flush(&reg->usage, reg->events);
    ksv_usage_destroy(&reg->usage);
    unload_item it;
    for (size_t i = 0; i < reg->n_models; i++) {
        ksv_engine_model *m = reg->models[i];
        for (size_t r = 0; r < m->n_revs; r++) {
            revision_free(reg, m->revs[r], &it);
            unload(&it);
        }
        model_free(m);
    }
    for (size_t i = 0; i < reg->n_dead; i++) {
        revision_free(reg, reg->dead_revs[i], &it);
        unload(&it);
    }
    for (size_t i = 0; i < reg->n_dead_models; i++)
        model_free(reg->dead_models[i]);
    free(reg->models);
    free(reg->dead_revs);
    free(reg->dead_models);
    free(reg->state_file);
    free(reg->reload_dir);
    ksv_cache_close(reg->cache);
    pthread_rwlock_destroy(&reg->lock);
    pthread_mutex_destroy(&reg->admin_mu);
    pthread_mutex_destroy(&reg->lc_mu);
    pthread_cond_destroy(&reg->lc_cond);
    free(reg);
}

int ksv_registry_restore(ksv_registry *reg, ksv_err *err)
{
    if (!reg->state_file)
        return 0;
    char *text = NULL;
    ksv_err rerr;
    if (ksv_read_file(reg->state_file, STATE_FILE_MAX, &text, NULL, &rerr) != 0) {
        if (rerr.status == 404)
            return 0;
        return ksv_err_set(err, 500, "%s", rerr.msg);
    }
    json_tokener *tok = json_tokener_new();
    json_object *root = tok ? json_tokener_parse_ex(tok, text, (int)strlen(text)) : NULL;
    bool complete = tok && json_tokener_get_error(tok) == json_tokener_success;
    json_tokener_free(tok);
    free(text);
    json_object *models;
    if (!root || !complete || !json_object_is_type(root, json_type_object) ||
        !json_object_object_get_ex(root, "models", &models) ||
        !json_object_is_type(models, json_type_array)) {
        json_object_put(root);
        return ksv_err_set(err, 500,
                           "%s is not a valid state file; move it aside to start empty",
                           reg->state_file);
    }
    int rc = 0;
    size_t n = json_object_array_length(models);
    ksv_model_spec *spec = malloc(sizeof *spec);
    if (!spec) {
        json_object_put(root);
        return ksv_err_set(err, 500, "out of memory");
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_object *mo = json_object_array_get_idx(models, i), *name;
        if (!json_object_object_get_ex(mo, "name", &name) ||
            !json_object_is_type(name, json_type_string)) {
            rc = ksv_err_set(err, 500, "%s: models[%zu] has no name", reg->state_file, i);
            break;
        }
        ksv_err perr;
        if (ksv_model_spec_from_json(json_object_get_string(name), mo, spec, &perr) != 0) {
            rc = ksv_err_set(err, 500, "%s: models[%zu]: %s", reg->state_file, i, perr.msg);
            break;
        }
        pthread_rwlock_wrlock(&reg->lock);
        rc = put_locked(reg, spec, err);
        pthread_rwlock_unlock(&reg->lock);
    }
    free(spec);
    json_object_put(root);
    if (rc == 0)
        ksv_log(KSV_LOG_INFO, NULL, "restored %zu model(s) from %s", n, reg->state_file);
    return rc;
}

/* ------------------------------------------------------------------- request path */

/* The chosen revision is scaled to zero: the request waits for its cold start, unless the
 * last one failed moments ago. Caller holds the lock. */
static int cold_route(ksv_engine_revision *rev, ksv_route *route, ksv_err *err)
{
    route->retry_after_s = ksv_cold_retry_after(rev->load_seconds);
    if (rev->state == KSV_REV_FAILED && ksv_mono_s() - rev->cold.failed_at < COLD_RETRY_S) {
        atomic_fetch_add_explicit(&rev->codes[ksv_code_slot(503)], 1, memory_order_relaxed);
        route->retry_after_s = COLD_RETRY_S;
        return ksv_err_set(err, 503, "revision %s could not start from zero: %s",
                           rev->spec.name, rev->error);
    }
    snprintf(route->cold_revision, sizeof route->cold_revision, "%s", rev->spec.name);
    route->cold_timeout_ms = rev->spec.timeout_ms;
    route->rev = NULL;
    route->model = NULL;
    return KSV_ROUTE_COLD;
}

int ksv_registry_cold_wait(ksv_registry *reg, ksv_cold_waiter *w, void (*suspend)(void *),
                           void *cookie, int *retry_after_s, ksv_err *err)
{
    pthread_rwlock_rdlock(&reg->lock);
    ksv_engine_model *m = find_model(reg, w->model);
    ksv_engine_revision *rev = m ? find_revision(m, w->revision) : NULL;
    int rc = 1; /* gone or warm: route again */
    if (rev && w->for_capacity) {
        /* At its limit: wait for a slot, up to KSV_QUEUE_PER_SLOT per slot (Knative's
         * queue-proxy: 10 x containerConcurrency per pod). */
        *retry_after_s = 1;
        int64_t limit = concurrency_limit(rev);
        if (!rev->cold.cold && is_loaded(rev) && limit > 0) {
            int64_t most = limit * KSV_QUEUE_PER_SLOT;
            int bound = most < INT_MAX ? (int)most : INT_MAX;
            char why[128];
            int replicas = ksv_kpa_replicas(&rev->kpa);
            snprintf(why, sizeof why, "%lld: %d replica(s) x containerConcurrency %d",
                     (long long)limit, replicas > 1 ? replicas : 1,
                     rev->spec.container_concurrency);
            rc = ksv_cold_enqueue_capacity(&reg->cold_queue, &rev->cold, bound, w, suspend,
                                           cookie, take_slot, rev, rev, why, err);
            if (rc != 0) {
                atomic_fetch_add_explicit(&rev->codes[ksv_code_slot(503)], 1,
                                          memory_order_relaxed);
                atomic_fetch_add_explicit(&rev->refused_at_limit, 1, memory_order_relaxed);
            }
        }
    } else if (rev && rev->cold.cold) {
        *retry_after_s = ksv_cold_retry_after(rev->load_seconds);
        rc = ksv_cold_enqueue(&reg->cold_queue, &rev->cold, m->spec.cold_start_queue, w,
                              suspend, cookie, err);
        if (rc == 0) {
            ksv_cold_request(&rev->cold);
            wake_lifecycle(reg);
        } else {
            atomic_fetch_add_explicit(&rev->codes[ksv_code_slot(503)], 1,
                                      memory_order_relaxed);
        }
    }
    pthread_rwlock_unlock(&reg->lock);
    return rc;
}

void ksv_registry_close_cold_queue(ksv_registry *reg)
{
    pthread_rwlock_rdlock(&reg->lock);
    ksv_cold_close(&reg->cold_queue);
    pthread_rwlock_unlock(&reg->lock);
}

int ksv_registry_route(ksv_registry *reg, const char *model, const char *revision,
                       uint64_t *rng, ksv_route *route, ksv_err *err)
{
    pthread_rwlock_rdlock(&reg->lock);
    ksv_engine_model *m = find_model(reg, model);
    ksv_engine_revision *rev = NULL;
    int rc = 0;
    route->retry_after_s = 0;
    if (!m) {
        rc = ksv_err_set(err, 404, "model %s not found", model);
    } else if (revision) {
        rev = find_revision(m, revision);
        if (!rev)
            rc = ksv_err_set(err, 404, "model %s has no revision %s", model, revision);
        else if (!routable(rev))
            rc = ksv_err_set(err, 503, "revision %s is %s", revision,
                             ksv_rev_state_name(rev->state));
    } else if (m->n_split == 0) {
        rc = ksv_err_set(err, 503, "model %s is not ready: no revision loaded yet", model);
    } else {
        int pick = (int)(ksv_splitmix64(rng) % 100);
        size_t i = 0;
        while (i + 1 < m->n_split && pick >= m->split[i].cumulative)
            i++;
        rev = m->split[i].rev;
    }
    if (rc == 0 && rev->cold.cold) {
        rc = cold_route(rev, route, err);
        pthread_rwlock_unlock(&reg->lock);
        return rc;
    }
    if (rc == 0 && rev->spec.container_concurrency > 0) {
        /* At the limit, or others already waiting (first come, first served): the request
         * waits for a slot, as behind Knative's queue-proxy. */
        if (atomic_load(&rev->cold.capacity_depth) > 0 || !take_slot(rev)) {
            snprintf(route->cold_revision, sizeof route->cold_revision, "%s", rev->spec.name);
            route->cold_timeout_ms = rev->spec.timeout_ms;
            route->retry_after_s = 1;
            ksv_err_set(err, 503, "revision %s is at its concurrency limit", rev->spec.name);
            pthread_rwlock_unlock(&reg->lock);
            return KSV_ROUTE_QUEUE;
        }
    } else if (rc == 0) {
        atomic_fetch_add_explicit(&rev->inflight, 1, memory_order_acq_rel);
    }
    pthread_rwlock_unlock(&reg->lock);
    if (rc == 0) {
        route->rev = rev;
        route->model = m;
        ksv_cold_touch(&rev->cold, reg_now_ns(reg), atomic_load(&rev->idle_gap_ns));
    }
    return rc;
}

static void push_error(ksv_engine_model *m, int status, const char *revision,
                       const char *request_id, const char *message)
{
    pthread_mutex_lock(&m->errors_mu);
    ksv_error_entry *e = &m->errors[m->errors_next];
    e->unix_time = ksv_wall_s();
    e->status = status;
    snprintf(e->request_id, sizeof e->request_id, "%s", request_id ? request_id : "");
    snprintf(e->revision, sizeof e->revision, "%s", revision ? revision : "");
    snprintf(e->message, sizeof e->message, "%s", message ? message : "");
    m->errors_next = (m->errors_next + 1) % ERROR_RING;
    if (m->errors_count < ERROR_RING)
        m->errors_count++;
    pthread_mutex_unlock(&m->errors_mu);
}

void ksv_registry_finish(ksv_registry *reg, ksv_route *route, int status, double seconds,
                         const char *request_id, const char *message)
{
    ksv_engine_revision *rev = route->rev;
    atomic_fetch_add_explicit(&rev->codes[ksv_code_slot(status)], 1, memory_order_relaxed);
    ksv_cold_touch(&rev->cold, reg_now_ns(reg), atomic_load(&rev->idle_gap_ns));
    ksv_hist_record(&rev->latency, seconds);
    if (status >= 400)
        push_error(route->model, status, rev->spec.name, request_id, message);
    /* Last: once this reaches zero the revision may be unloaded or freed. */
    if (rev->spec.container_concurrency > 0)
        release_slot(reg, rev);
    else
        atomic_fetch_sub_explicit(&rev->inflight, 1, memory_order_acq_rel);
    route->rev = NULL;
    route->model = NULL;
}

void ksv_registry_route_granted(ksv_registry *reg, ksv_cold_waiter *w, ksv_route *route)
{
    ksv_engine_revision *rev = w->granted; /* alive: the slot it holds keeps it */
    w->granted = NULL;
    route->rev = rev;
    route->model = rev->model;
    route->retry_after_s = 0;
    ksv_cold_touch(&rev->cold, reg_now_ns(reg), atomic_load(&rev->idle_gap_ns));
}

void ksv_registry_release_grant(ksv_registry *reg, ksv_cold_waiter *w)
{
    ksv_engine_revision *rev = w->granted;
    w->granted = NULL;
    if (rev)
        release_slot(reg, rev);
}

void ksv_registry_record_model_error(ksv_registry *reg, const char *model, int status,
                                     const char *request_id, const char *message)
{
    pthread_rwlock_rdlock(&reg->lock);
    ksv_engine_model *m = find_model(reg, model);
    if (m)
        push_error(m, status, NULL, request_id, message);
    pthread_rwlock_unlock(&reg->lock);
}

/* -------------------------------------------------------------------- read views */

bool ksv_registry_all_ready(ksv_registry *reg)
{
    bool ready = true;
    pthread_rwlock_rdlock(&reg->lock);
    for (size_t i = 0; i < reg->n_models; i++) {
        ksv_engine_model *m = reg->models[i];
        if (m->n_split == 0)
            ready = false;
    }
    pthread_rwlock_unlock(&reg->lock);
    return ready;
}

int ksv_registry_ready(ksv_registry *reg, const char *model, const char *revision)
{
    int rc;
    pthread_rwlock_rdlock(&reg->lock);
    ksv_engine_model *m = find_model(reg, model);
    if (!m) {
        rc = -1;
    } else if (revision) {
        ksv_engine_revision *rev = find_revision(m, revision);
        rc = !rev ? -1 : routable(rev) ? 1 : 0;
    } else {
        rc = m->n_split > 0;
    }
    pthread_rwlock_unlock(&reg->lock);
    return rc;
}

void ksv_registry_write_model_list(ksv_registry *reg, ksv_sb *sb)
{
    pthread_rwlock_rdlock(&reg->lock);
    ksv_sb_puts(sb, "{\"models\":[");
    for (size_t i = 0; i < reg->n_models; i++) {
        if (i)
            ksv_sb_putc(sb, ',');
        ksv_sb_json_str(sb, reg->models[i]->spec.name);
    }
    ksv_sb_puts(sb, "]}");
    pthread_rwlock_unlock(&reg->lock);
}

/* The revision whose shape describes the model: the largest share, else the newest
 * loaded one. */
static ksv_engine_revision *describing_revision(ksv_engine_model *m)
{
    ksv_engine_revision *best = NULL;
    for (size_t i = 0; i < m->n_revs; i++) {
        ksv_engine_revision *rev = m->revs[i];
        if (!best || rev->traffic > best->traffic ||
            (rev->traffic == best->traffic && is_loaded(rev) && !is_loaded(best)))
            best = rev;
    }
    return best;
}

int ksv_registry_write_metadata(ksv_registry *reg, const char *model, const char *revision,
                                ksv_sb *sb, ksv_err *err)
{
    int rc = 0;
    pthread_rwlock_rdlock(&reg->lock);
    ksv_engine_model *m = find_model(reg, model);
    ksv_engine_revision *rev = NULL;
    if (!m)
        rc = ksv_err_set(err, 404, "model %s not found", model);
    else if (revision && !(rev = find_revision(m, revision)))
        rc = ksv_err_set(err, 404, "model %s has no revision %s", model, revision);
    if (rc == 0) {
        if (!rev)
            rev = describing_revision(m);
        ksv_sb_puts(sb, "{\"name\":");
        ksv_sb_json_str(sb, model);
        ksv_sb_puts(sb, ",\"versions\":[");
        if (revision) {
            ksv_sb_json_str(sb, revision);
        } else {
            for (size_t i = 0; i < m->n_revs; i++) {
                if (i)
                    ksv_sb_putc(sb, ',');
                ksv_sb_json_str(sb, m->revs[i]->spec.name);
            }
        }
        /* A scaled-to-zero revision keeps the shape it had when loaded. */
        bool shaped = rev && (rev->handle || rev->cold.cold);
        ksv_sb_puts(sb, "],\"platform\":");
        ksv_sb_json_str(sb, shaped && rev->info.platform[0] ? rev->info.platform : "xgboost");
        ksv_sb_puts(sb, ",\"inputs\":[{\"name\":\"input-0\","
                        "\"datatype\":\"FP32\",\"shape\":[-1");
        if (shaped)
            ksv_sb_printf(sb, ",%zu", rev->info.num_features);
        ksv_sb_puts(sb, "]}],\"outputs\":[{\"name\":\"output-0\",\"datatype\":\"FP32\","
                        "\"shape\":[-1");
        if (shaped && rev->info.num_outputs > 1)
            ksv_sb_printf(sb, ",%zu", rev->info.num_outputs);
        ksv_sb_puts(sb, "]}],\"parameters\":{\"runtime\":");
        ksv_sb_json_str(sb, rev ? effective_runtime(rev) : "");
        if (shaped && rev->info.objective[0]) {
            ksv_sb_puts(sb, ",\"objective\":");
            ksv_sb_json_str(sb, rev->info.objective);
        }
        ksv_sb_puts(sb, "}}");
    }
    pthread_rwlock_unlock(&reg->lock);
    return rc;
}

static void write_revision_state(ksv_sb *sb, const ksv_engine_revision *rev)
{
    ksv_sb_puts(sb, "{\"name\":");
    ksv_sb_json_str(sb, rev->spec.name);
    ksv_sb_puts(sb, ",\"spec\":");
    ksv_revision_spec_to_json(sb, &rev->spec, true);
    ksv_sb_printf(sb, ",\"state\":\"%s\",\"traffic\":%d,\"desired_traffic\":%d,"
                      "\"inflight\":%lld,\"load_seconds\":%.6f,\"reload_copy\":%s",
                  ksv_rev_state_name(rev->state), rev->traffic, rev->desired,
                  (long long)atomic_load(&rev->inflight), rev->load_seconds,
                  rev->info.from_reload_copy ? "true" : "false");
    if (rev->handle || rev->cold.cold) {
        ksv_sb_printf(sb, ",\"num_features\":%zu,\"num_outputs\":%zu", rev->info.num_features,
                      rev->info.num_outputs);
        ksv_sb_puts(sb, ",\"runtime\":");
        ksv_sb_json_str(sb, effective_runtime(rev));
        if (rev->info.runtime_note[0]) {
            ksv_sb_puts(sb, ",\"runtime_reason\":");
            ksv_sb_json_str(sb, rev->info.runtime_note);
        }
    }
    ksv_sb_printf(sb, ",\"memory_bytes\":%llu,\"gpu_memory_bytes\":%llu",
                  (unsigned long long)rev->memory_bytes,
                  (unsigned long long)rev->gpu_memory_bytes);
    ksv_kpa_write_state(sb, &rev->kpa);
    ksv_cold_write_state(sb, &rev->cold);
    if (rev->fetch_id) {
        ksv_sb_puts(sb, ",\"download\":");
        ksv_fetch_progress_json(&rev->download, sb);
    }
    if (rev->error[0]) {
        ksv_sb_puts(sb, ",\"error\":");
        ksv_sb_json_str(sb, rev->error);
    }
    ksv_sb_putc(sb, '}');
}

static void write_model_state(const ksv_registry *reg, ksv_sb *sb, const ksv_engine_model *m)
{
    ksv_sb_puts(sb, "{\"name\":");
    ksv_sb_json_str(sb, m->spec.name);
    ksv_sb_printf(sb, ",\"pinned\":%s,\"rollback_window_s\":%d,\"scale_window_s\":%d,"
                      "\"scale_to_zero_retention_s\":%d,\"cold_start_queue\":%d,"
                      "\"target_utilization_percent\":%g,\"scale_down_delay_s\":%d,\"ready\":%s,"
                      "\"traffic_applied\":%s,\"traffic\":{",
                  m->spec.pinned ? "true" : "false", m->spec.rollback_window_s,
                  m->spec.scale_window_s, m->spec.scale_retention_s, m->spec.cold_start_queue,
                  m->spec.target_utilization, m->spec.scale_down_delay_s,
                  m->n_split > 0 ? "true" : "false", m->pending ? "false" : "true");
    for (size_t i = 0; i < m->spec.n_revisions; i++) {
        if (i)
            ksv_sb_putc(sb, ',');
        ksv_sb_json_str(sb, m->spec.revisions[i].name);
        ksv_sb_printf(sb, ":%d", m->spec.traffic[i]);
    }
    ksv_sb_puts(sb, "},\"effective_traffic\":{");
    for (size_t i = 0; i < m->n_split; i++) {
        if (i)
            ksv_sb_putc(sb, ',');
        ksv_sb_json_str(sb, m->split[i].rev->spec.name);
        ksv_sb_printf(sb, ":%d", m->split[i].rev->traffic);
    }
    ksv_sb_puts(sb, "},\"revisions\":[");
    for (size_t i = 0; i < m->n_revs; i++) {
        if (i)
            ksv_sb_putc(sb, ',');
        write_revision_state(sb, m->revs[i]);
    }
    ksv_sb_putc(sb, ']');
    if (reg->state_extra)
        reg->state_extra(reg->state_extra_ctx, m->spec.name, sb);
    ksv_sb_putc(sb, '}');
}

void ksv_registry_write_state(ksv_registry *reg, ksv_sb *sb)
{
    pthread_rwlock_rdlock(&reg->lock);
    ksv_sb_puts(sb, "{\"models\":[");
    for (size_t i = 0; i < reg->n_models; i++) {
        if (i)
            ksv_sb_putc(sb, ',');
        write_model_state(reg, sb, reg->models[i]);
    }
    pthread_rwlock_unlock(&reg->lock);
    ksv_sb_putc(sb, ']');
    /* Only an engine that was asked to pull lists pulls: the state of one that never was
     * reads as before. */
    ksv_sb pulls;
    ksv_sb_init(&pulls);
    ksv_pulls_write(reg->pulls, &pulls);
    if (pulls.len > 2) {
        ksv_sb_puts(sb, ",\"pulls\":");
        ksv_sb_append(sb, pulls.data, pulls.len);
    }
    ksv_sb_free(&pulls);
    ksv_sb_putc(sb, '}');
}

ksv_pulls *ksv_registry_pulls(ksv_registry *reg)
{
    return reg->pulls;
}

void ksv_registry_write_usage(ksv_registry *reg, ksv_sb *sb)
{
    pthread_rwlock_rdlock(&reg->lock);
    int64_t now_ns = reg_now_ns(reg);
    ksv_sb_printf(sb, "{\"now\":%.3f,\"revisions\":[",
                  (double)ksv_clock_wall_ms(reg->clock) * 1e-3);
    bool first = true;
    for (size_t i = 0; i < reg->n_models; i++)
        for (size_t r = 0; r < reg->models[i]->n_revs; r++) {
            ksv_engine_revision *rev = reg->models[i]->revs[r];
            if (!rev->resident_since_ms)
                continue;
            ksv_sb_puts(sb, first ? "{\"model\":" : ",{\"model\":");
            first = false;
            ksv_sb_json_str(sb, reg->models[i]->spec.name);
            ksv_sb_puts(sb, ",\"revision\":");
            ksv_sb_json_str(sb, rev->spec.name);
            int64_t idle = ksv_cold_idle_ns(&rev->cold, now_ns, atomic_load(&rev->idle_gap_ns));
            ksv_sb_printf(sb, ",\"since\":%.3f,\"memory_bytes\":%llu,\"requests\":%llu,"
                              "\"idle_seconds\":%.3f}",
                          (double)rev->resident_since_ms * 1e-3,
                          (unsigned long long)rev->memory_bytes,
                          (unsigned long long)(answers(rev) - rev->requests_at_load),
                          (double)idle * 1e-9);
        }
    ksv_sb_puts(sb, "]}");
    pthread_rwlock_unlock(&reg->lock);
}

int ksv_registry_write_model(ksv_registry *reg, const char *model, ksv_sb *sb, ksv_err *err)
{
    pthread_rwlock_rdlock(&reg->lock);
    ksv_engine_model *m = find_model(reg, model);
    if (m)
        write_model_state(reg, sb, m);
    pthread_rwlock_unlock(&reg->lock);
    return m ? 0 : ksv_err_set(err, 404, "model %s not found", model);
}

int ksv_registry_write_errors(ksv_registry *reg, const char *model, ksv_sb *sb, ksv_err *err)
{
    pthread_rwlock_rdlock(&reg->lock);
    ksv_engine_model *m = find_model(reg, model);
    if (m) {
        pthread_mutex_lock(&m->errors_mu);
        ksv_sb_puts(sb, "{\"model\":");
        ksv_sb_json_str(sb, model);
        ksv_sb_puts(sb, ",\"errors\":[");
        /* Newest first. */
        for (size_t k = 0; k < m->errors_count; k++) {
            const ksv_error_entry *e =
                &m->errors[(m->errors_next + ERROR_RING - 1 - k) % ERROR_RING];
            if (k)
                ksv_sb_putc(sb, ',');
            ksv_sb_printf(sb, "{\"time\":%.3f,\"status\":%d,\"request_id\":", e->unix_time,
                          e->status);
            ksv_sb_json_str(sb, e->request_id);
            ksv_sb_puts(sb, ",\"revision\":");
            ksv_sb_json_str(sb, e->revision);
            ksv_sb_puts(sb, ",\"message\":");
            ksv_sb_json_str(sb, e->message);
            ksv_sb_putc(sb, '}');
        }
        ksv_sb_puts(sb, "]}");
        pthread_mutex_unlock(&m->errors_mu);
    }
    pthread_rwlock_unlock(&reg->lock);
    return m ? 0 : ksv_err_set(err, 404, "model %s not found", model);
}

void ksv_registry_write_histograms(ksv_registry *reg, ksv_sb *sb)
{
    ksv_hist_snap *snap = malloc(sizeof *snap);
    pthread_rwlock_rdlock(&reg->lock);
    ksv_sb_puts(sb, "{\"series\":[");
    bool first = true;
    for (size_t i = 0; i < reg->n_models && snap; i++) {
        ksv_engine_model *m = reg->models[i];
        for (size_t r = 0; r < m->n_revs; r++) {
            ksv_engine_revision *rev = m->revs[r];
            if (!first)
                ksv_sb_putc(sb, ',');
            first = false;
            ksv_sb_puts(sb, "{\"model\":");
            ksv_sb_json_str(sb, m->spec.name);
            ksv_sb_puts(sb, ",\"revision\":");
            ksv_sb_json_str(sb, rev->spec.name);
            ksv_sb_puts(sb, ",\"codes\":{");
            bool firstc = true;
            for (int s = 0; s < KSV_CODE_SLOTS; s++) {
                uint64_t c = atomic_load_explicit(&rev->codes[s], memory_order_relaxed);
                if (!c)
                    continue;
                ksv_sb_printf(sb, "%s\"%d\":%llu", firstc ? "" : ",",
                              ksv_code_of_slot(s) ? ksv_code_of_slot(s) : 599,
                              (unsigned long long)c);
                firstc = false;
            }
            ksv_sb_puts(sb, "},\"histogram\":");
            ksv_hist_snapshot(&rev->latency, snap);
            ksv_hist_write_fine_json(sb, snap);
            if (rev->llm)
                ksv_llm_stats_write_json(sb, rev->llm, snap);
            ksv_sb_putc(sb, '}');
        }
    }
    ksv_sb_puts(sb, "]}");
    pthread_rwlock_unlock(&reg->lock);
    free(snap);
    if (!snap)
        sb->oom = true;
}

static bool has_mirrored(ksv_engine_revision *rev)
{
    for (int s = 0; s < KSV_CODE_SLOTS; s++)
        if (atomic_load_explicit(&rev->mirror_codes[s], memory_order_relaxed))
            return true;
    return false;
}

typedef enum {
    FAM_REQUESTS,
    FAM_DURATION,
    FAM_INFLIGHT,
    FAM_READY,
    FAM_LOAD,
    FAM_TRAFFIC,
    FAM_BATCHES,
    FAM_BATCH_ROWS,
    FAM_RUNTIME_RESTARTS,
    FAM_LLM_TTFT,
    FAM_LLM_TPOT,
    FAM_LLM_PROMPT,
    FAM_LLM_GENERATION,
} family;

static void write_family(ksv_registry *reg, ksv_sb *sb, family f, ksv_hist_snap *snap)
{
    static const char *heads[] = {
        "# HELP ksv_requests_total Requests answered, by model, revision and status code.\n"
        "# TYPE ksv_requests_total counter\n",
        "# HELP ksv_request_duration_seconds Time from request to response (log-linear "
        "buckets: 8 per power of two).\n# TYPE ksv_request_duration_seconds histogram\n",
        "# HELP ksv_inflight_requests Requests being served now.\n"
        "# TYPE ksv_inflight_requests gauge\n",
        "# HELP ksv_model_ready 1 when the revision is loaded and can serve.\n"
        "# TYPE ksv_model_ready gauge\n",
        "# HELP ksv_model_load_seconds Seconds the revision took to load and warm.\n"
        "# TYPE ksv_model_load_seconds gauge\n",
        "# HELP ksv_traffic_percent Share of the model's traffic the revision gets now.\n"
        "# TYPE ksv_traffic_percent gauge\n",
        "# HELP ksv_batches_total Runtime calls that served merged requests (batching on).\n"
        "# TYPE ksv_batches_total counter\n",
        "# HELP ksv_batch_rows_total Rows predicted through those calls.\n"
        "# TYPE ksv_batch_rows_total counter\n",
        "# HELP ksv_runtime_restarts_total Restarts of the revision's external runtime "
        "process after it exited.\n# TYPE ksv_runtime_restarts_total counter\n",
        "", "", "", "", /* llm_stats writes its own heads */
    };
    /* External runtimes' families appear only when such a revision exists. */
    bool external_only = f >= FAM_RUNTIME_RESTARTS, any_external = false;
    for (size_t i = 0; i < reg->n_models && external_only && !any_external; i++)
        for (size_t r = 0; r < reg->models[i]->n_revs; r++)
            any_external |= reg->models[i]->revs[r]->llm != NULL;
    if (external_only && !any_external)
        return;
    if (f < FAM_LLM_TTFT)
        ksv_sb_puts(sb, heads[f]);
    bool first_llm = true;
    for (size_t i = 0; i < reg->n_models; i++) {
        ksv_engine_model *m = reg->models[i];
        for (size_t r = 0; r < m->n_revs; r++) {
            ksv_engine_revision *rev = m->revs[r];
            char labels[2 * KSV_NAME_MAX + 32];
            snprintf(labels, sizeof labels, "model=\"%s\",revision=\"%s\"", m->spec.name,
                     rev->spec.name);
            switch (f) {
            case FAM_REQUESTS:
                for (int s = 0; s < KSV_CODE_SLOTS; s++) {
                    uint64_t c = atomic_load_explicit(&rev->codes[s], memory_order_relaxed);
                    if (c || s == 0)
                        ksv_sb_printf(sb, "ksv_requests_total{%s,code=\"%d\"} %llu\n", labels,
                                      ksv_code_of_slot(s) ? ksv_code_of_slot(s) : 599,
                                      (unsigned long long)c);
                }
                /* Shadow copies a release gate sent: their own series, never the clients'. */
                for (int s = 0; has_mirrored(rev) && s < KSV_CODE_SLOTS; s++) {
                    uint64_t c =
                        atomic_load_explicit(&rev->mirror_codes[s], memory_order_relaxed);
                    if (c)
                        ksv_sb_printf(sb,
                                      "ksv_requests_total{%s,code=\"%d\",mirrored=\"true\"} "
                                      "%llu\n",
                                      labels, ksv_code_of_slot(s) ? ksv_code_of_slot(s) : 599,
                                      (unsigned long long)c);
                }
                break;
            case FAM_DURATION:
                ksv_hist_snapshot(&rev->latency, snap);
                ksv_hist_write_prometheus(sb, "ksv_request_duration_seconds", labels, snap);
                if (has_mirrored(rev)) {
                    char mlabels[sizeof labels + 20];
                    snprintf(mlabels, sizeof mlabels, "%s,mirrored=\"true\"", labels);
                    ksv_hist_snapshot(&rev->mirror_latency, snap);
                    ksv_hist_write_prometheus(sb, "ksv_request_duration_seconds", mlabels, snap);
                }
                break;
            case FAM_INFLIGHT:
                ksv_sb_printf(sb, "ksv_inflight_requests{%s} %lld\n", labels,
                              (long long)atomic_load(&rev->inflight));
                break;
            case FAM_READY:
                ksv_sb_printf(sb, "ksv_model_ready{%s} %d\n", labels, is_loaded(rev) ? 1 : 0);
                break;
            case FAM_LOAD:
                ksv_sb_printf(sb, "ksv_model_load_seconds{%s} %.6f\n", labels,
                              rev->load_seconds);
                break;
            case FAM_TRAFFIC:
                ksv_sb_printf(sb, "ksv_traffic_percent{%s} %d\n", labels, rev->traffic);
                break;
            case FAM_RUNTIME_RESTARTS:
                if (rev->ops && rev->ops->proxied)
                    ksv_sb_printf(sb, "ksv_runtime_restarts_total{%s} %llu\n", labels,
                                  (unsigned long long)(rev->handle ? ksv_ext_restarts(rev->handle)
                                                                   : 0));
                break;
            case FAM_LLM_TTFT:
            case FAM_LLM_TPOT:
            case FAM_LLM_PROMPT:
            case FAM_LLM_GENERATION:
                if (rev->llm) {
                    ksv_llm_stats_write_prometheus(sb, (int)(f - FAM_LLM_TTFT) | (first_llm ? 0x10 : 0),
                                                   labels, rev->llm, snap);
                    first_llm = false;
                }
                break;
            case FAM_BATCHES:
            case FAM_BATCH_ROWS:
                if (rev->batcher) {
                    uint64_t batches, rows;
                    ksv_batcher_counts(rev->batcher, &batches, &rows);
                    ksv_sb_printf(sb, "%s{%s} %llu\n",
                                  f == FAM_BATCHES ? "ksv_batches_total" : "ksv_batch_rows_total",
                                  labels,
                                  (unsigned long long)(f == FAM_BATCHES ? batches : rows));
                }
                break;
            }
        }
    }
}

/* Memory and cold starts. Cold-start series only for revisions that may scale to zero, so
 * that always-on revisions do not carry 200 empty histogram lines each. */
static void write_elastic_families(ksv_registry *reg, ksv_sb *sb, ksv_hist_snap *snap)
{
    char gpu_device[16];
    snprintf(gpu_device, sizeof gpu_device, "gpu%d", reg->gpu > 0 ? reg->gpu : 0);
    if (reg->memory_budget || reg->gpu_memory_budget)
        ksv_sb_puts(sb, "# HELP ksv_memory_budget_bytes --memory-budget and --gpu-memory-budget: "
                        "what loaded revisions may hold.\n# TYPE ksv_memory_budget_bytes gauge\n");
    if (reg->memory_budget)
        ksv_sb_printf(sb, "ksv_memory_budget_bytes{device=\"cpu\"} %llu\n",
                      (unsigned long long)reg->memory_budget);
    if (reg->gpu_memory_budget)
        ksv_sb_printf(sb, "ksv_memory_budget_bytes{device=\"%s\"} %llu\n", gpu_device,
                      (unsigned long long)reg->gpu_memory_budget);
    ksv_sb_puts(sb, "# HELP ksv_model_memory_bytes Memory the loaded revision holds, measured "
                    "across its load.\n# TYPE ksv_model_memory_bytes gauge\n");
    for (size_t i = 0; i < reg->n_models; i++)
        for (size_t r = 0; r < reg->models[i]->n_revs; r++) {
            const ksv_engine_revision *rev = reg->models[i]->revs[r];
            ksv_sb_printf(sb, "ksv_model_memory_bytes{model=\"%s\",revision=\"%s\",device=\"cpu\"} "
                              "%llu\n",
                          reg->models[i]->spec.name, rev->spec.name,
                          (unsigned long long)rev->memory_bytes);
            if (rev->gpu_memory_bytes || rev->spec.gpu_memory_bytes > 0)
                ksv_sb_printf(sb, "ksv_model_memory_bytes{model=\"%s\",revision=\"%s\","
                                  "device=\"%s\"} %llu\n",
                              reg->models[i]->spec.name, rev->spec.name, gpu_device,
                              (unsigned long long)rev->gpu_memory_bytes);
        }
    ksv_sb_puts(sb, "# HELP ksv_revision_replicas Executor instances of the revision (Knative "
                    "KPA; 0 when scaled to zero or unloaded).\n"
                    "# TYPE ksv_revision_replicas gauge\n");
    for (size_t i = 0; i < reg->n_models; i++)
        for (size_t r = 0; r < reg->models[i]->n_revs; r++) {
            const ksv_engine_revision *rev = reg->models[i]->revs[r];
            ksv_sb_printf(sb, "ksv_revision_replicas{model=\"%s\",revision=\"%s\"} %d\n",
                          reg->models[i]->spec.name, rev->spec.name,
                          ksv_kpa_replicas(&rev->kpa));
        }
    ksv_sb_puts(sb, "# HELP ksv_request_queue_depth Requests waiting for a free slot at the "
                    "revision's concurrency limit (replicas x containerConcurrency).\n"
                    "# TYPE ksv_request_queue_depth gauge\n");
    for (size_t i = 0; i < reg->n_models; i++)
        for (size_t r = 0; r < reg->models[i]->n_revs; r++) {
            const ksv_engine_revision *rev = reg->models[i]->revs[r];
            if (rev->spec.container_concurrency > 0)
                ksv_sb_printf(sb, "ksv_request_queue_depth{model=\"%s\",revision=\"%s\"} %d\n",
                              reg->models[i]->spec.name, rev->spec.name,
                              atomic_load(&((ksv_engine_revision *)rev)->cold.capacity_depth));
        }
    for (int f = 0; f < KSV_COLD_FAM_COUNT; f++) {
        ksv_cold_write_head(sb, (ksv_cold_family)f);
        for (size_t i = 0; i < reg->n_models; i++)
            for (size_t r = 0; r < reg->models[i]->n_revs; r++) {
                const ksv_engine_revision *rev = reg->models[i]->revs[r];
                if (rev->spec.min_replicas != 0 && atomic_load(&rev->cold.cold_starts) == 0)
                    continue;
                char labels[2 * KSV_NAME_MAX + 32];
                snprintf(labels, sizeof labels, "model=\"%s\",revision=\"%s\"",
                         reg->models[i]->spec.name, rev->spec.name);
                ksv_cold_write_series(sb, (ksv_cold_family)f, labels, &rev->cold, snap);
            }
    }
}

void ksv_registry_write_prometheus(ksv_registry *reg, ksv_sb *sb)
{
    ksv_hist_snap *snap = malloc(sizeof *snap);
    if (!snap) {
        sb->oom = true;
        return;
    }
    pthread_rwlock_rdlock(&reg->lock);
    for (int f = FAM_REQUESTS; f <= FAM_LLM_GENERATION; f++)
        write_family(reg, sb, (family)f, snap);
    write_elastic_families(reg, sb, snap);
    pthread_rwlock_unlock(&reg->lock);
    free(snap);
}

static bool in_split(const ksv_engine_model *m, const ksv_engine_revision *rev)
{
    for (size_t i = 0; i < m->n_split; i++)
        if (m->split[i].rev == rev)
            return true;
    return false;
}

int ksv_registry_visit(ksv_registry *reg, const char *model, const char *revision,
                       ksv_revision_visitor fn, void *ctx, ksv_err *err)
{
    pthread_rwlock_rdlock(&reg->lock);
    int n = 0;
    ksv_engine_model *only = model ? find_model(reg, model) : NULL;
    if (model && !only) {
        n = ksv_err_set(err, 404, "model %s not found", model);
    } else if (only && revision && !find_revision(only, revision)) {
        n = ksv_err_set(err, 404, "model %s has no revision %s", model, revision);
    } else {
        for (size_t i = 0; i < reg->n_models; i++) {
            ksv_engine_model *m = reg->models[i];
            if (only && m != only)
                continue;
            for (size_t r = 0; r < m->n_revs; r++) {
                if (revision && strcmp(m->revs[r]->spec.name, revision) != 0)
                    continue;
                fn(ctx, m->spec.name, m->revs[r], in_split(m, m->revs[r]));
                n++;
            }
        }
    }
    pthread_rwlock_unlock(&reg->lock);
    return n;
}

void ksv_registry_memory(ksv_registry *reg, uint64_t *used, uint64_t *budget,
                         uint64_t *gpu_used, uint64_t *gpu_budget)
{
    pthread_rwlock_rdlock(&reg->lock);
    *used = memory_in_use(reg, false);
    *budget = reg->memory_budget;
    *gpu_used = memory_in_use(reg, true);
    *gpu_budget = reg->gpu_memory_budget;
    pthread_rwlock_unlock(&reg->lock);
}

int64_t ksv_registry_total_inflight(ksv_registry *reg)
{
    int64_t total = 0;
    pthread_rwlock_rdlock(&reg->lock);
    for (size_t i = 0; i < reg->n_models; i++)
        for (size_t r = 0; r < reg->models[i]->n_revs; r++)
            total += atomic_load(&reg->models[i]->revs[r]->inflight);
    for (size_t i = 0; i < reg->n_dead; i++)
        total += atomic_load(&reg->dead_revs[i]->inflight);
    pthread_rwlock_unlock(&reg->lock);
    return total;
}

void ksv_registry_write_cache(ksv_registry *reg, ksv_sb *sb)
{
    if (reg->cache)
        ksv_cache_write_json(reg->cache, sb);
    else
        ksv_sb_puts(sb, "null");
}

ksv_event_log *ksv_registry_events(ksv_registry *reg)
{
    return reg->events;
}

/* ------------------------------------------------------------ release gate hooks */

int ksv_registry_sample(ksv_registry *reg, const char *model, const char *revision,
                        ksv_rev_sample *out, ksv_hist_snap *hist, ksv_hist_snap *mirror_hist,
                        ksv_err *err)
{
    memset(out, 0, sizeof *out);
    pthread_rwlock_rdlock(&reg->lock);
    ksv_engine_model *m = find_model(reg, model);
    ksv_engine_revision *rev = m ? find_revision(m, revision) : NULL;
    if (rev) {
        out->state = rev->state;
        out->traffic = rev->traffic;
        out->desired = rev->desired;
        out->loaded = is_loaded(rev);
        for (int s = 0; s < KSV_CODE_SLOTS; s++) {
            uint64_t c = atomic_load_explicit(&rev->codes[s], memory_order_relaxed);
            int code = ksv_code_of_slot(s);
            out->total += c;
            if (code >= 200 && code < 300)
                out->ok += c;
        }
        for (int s = 0; s < KSV_CODE_SLOTS; s++) {
            uint64_t c = atomic_load_explicit(&rev->mirror_codes[s], memory_order_relaxed);
            int code = ksv_code_of_slot(s);
            out->mirror_total += c;
            if (code >= 200 && code < 300)
                out->mirror_ok += c;
        }
        out->mirror_rows = atomic_load(&rev->mirror_rows);
        out->mirror_diff_rows = atomic_load(&rev->mirror_diff_rows);
        snprintf(out->error, sizeof out->error, "%s", rev->error);
        if (hist)
            ksv_hist_snapshot(&rev->latency, hist);
        if (mirror_hist)
            ksv_hist_snapshot(&rev->mirror_latency, mirror_hist);
    }
    pthread_rwlock_unlock(&reg->lock);
    if (!m)
        return ksv_err_set(err, 404, "model %s not found", model);
    if (!rev)
        return ksv_err_set(err, 404, "model %s has no revision %s", model, revision);
    return 0;
}

int ksv_registry_main_revision(ksv_registry *reg, const char *model, const char *except,
                               char out[KSV_NAME_MAX], ksv_err *err)
{
    out[0] = '\0';
    pthread_rwlock_rdlock(&reg->lock);
    ksv_engine_model *m = find_model(reg, model);
    int best = -1;
    for (size_t i = 0; m && i < m->spec.n_revisions; i++) {
        if (strcmp(m->spec.revisions[i].name, except) == 0 || m->spec.traffic[i] <= best)
            continue;
        best = m->spec.traffic[i];
        snprintf(out, KSV_NAME_MAX, "%s", m->spec.revisions[i].name);
    }
    pthread_rwlock_unlock(&reg->lock);
    return m ? 0 : ksv_err_set(err, 404, "model %s not found", model);
}

int ksv_registry_set_canary_weight(ksv_registry *reg, const char *model, const char *stable,
                                   const char *canary, int weight, ksv_err *err)
{
    pthread_mutex_lock(&reg->admin_mu);
    pthread_rwlock_wrlock(&reg->lock);
    int rc = 0;
    ksv_engine_model *m = find_model(reg, model);
    ksv_model_spec *spec = m ? malloc(sizeof *spec) : NULL;
    if (!m) {
        rc = ksv_err_set(err, 404, "model %s not found", model);
    } else if (!spec) {
        rc = ksv_err_set(err, 500, "out of memory");
    } else if (m->spec.pinned) {
        rc = ksv_err_set(err, 409, "model %s is served from the command line; its traffic "
                                   "cannot change", model);
    } else {
        *spec = m->spec;
        bool has_stable = false, has_canary = false, changed = false;
        for (size_t i = 0; i < spec->n_revisions; i++) {
            const char *name = spec->revisions[i].name;
            int want = strcmp(name, canary) == 0   ? weight
                       : strcmp(name, stable) == 0 ? 100 - weight
                                                   : 0;
            has_stable |= strcmp(name, stable) == 0;
            has_canary |= strcmp(name, canary) == 0;
            changed |= spec->traffic[i] != want;
            spec->traffic[i] = want;
        }
        if (!has_stable || !has_canary)
            rc = ksv_err_set(err, 404, "model %s has no revision %s", model,
                             has_canary ? stable : canary);
        else if (changed)
            rc = put_locked(reg, spec, err);
        else
            rc = 1; /* already so: nothing to persist */
    }
    pthread_rwlock_unlock(&reg->lock);
    free(spec);
    if (rc == 0)
        rc = persist(reg, err);
    pthread_mutex_unlock(&reg->admin_mu);
    return rc < 0 ? -1 : 0;
}

void ksv_registry_set_state_extra(ksv_registry *reg, ksv_model_state_extra_fn fn, void *ctx)
{
    reg->state_extra = fn;
    reg->state_extra_ctx = ctx;
}

/* ------------------------------------------------------------------ mirroring */

int ksv_registry_hold_warm(ksv_registry *reg, const char *model, const char *revision,
                           bool hold, bool *may_scale, ksv_err *err)
{
    pthread_rwlock_wrlock(&reg->lock);
    ksv_engine_model *m = find_model(reg, model);
    ksv_engine_revision *rev = m ? find_revision(m, revision) : NULL;
    int rc = 0;
    if (!m) {
        rc = ksv_err_set(err, 404, "model %s not found", model);
    } else if (!rev) {
        rc = ksv_err_set(err, 404, "model %s has no revision %s", model, revision);
    } else {
        rev->held_warm = hold;
        if (may_scale)
            *may_scale = rev->spec.min_replicas == 0;
        if (hold && rev->cold.cold && !rev->cold.loading) {
            ksv_cold_request(&rev->cold); /* loaded as a cold start, before any request */
            wake_lifecycle(reg);
        } else if (hold && rev->state == KSV_REV_UNLOADED) {
            rev->state = KSV_REV_LOADING; /* out of the split since its rollback window */
            wake_lifecycle(reg);
        }
    }
    pthread_rwlock_unlock(&reg->lock);
    return rc;
}

int ksv_registry_set_mirror(ksv_registry *reg, const char *model, const char *revision,
                            int weight, ksv_err *err)
{
    pthread_rwlock_wrlock(&reg->lock);
    ksv_engine_model *m = find_model(reg, model);
    ksv_engine_revision *rev = m && revision ? find_revision(m, revision) : NULL;
    int rc = 0;
    if (!m)
        rc = ksv_err_set(err, 404, "model %s not found", model);
    else if (revision && !rev)
        rc = ksv_err_set(err, 404, "model %s has no revision %s", model, revision);
    else {
        m->mirror = rev;
        m->mirror_weight = weight < 0 ? 0 : weight > 100 ? 100 : weight;

    }
    pthread_rwlock_unlock(&reg->lock);
    return rc;
}

int ksv_registry_write_runtime_logs(ksv_registry *reg, const char *model, const char *revision,
                                    ksv_sb *sb, ksv_err *err)
{
    int rc = 0;
    pthread_rwlock_rdlock(&reg->lock);
    ksv_engine_model *m = find_model(reg, model);
    ksv_engine_revision *rev = m ? find_revision(m, revision) : NULL;
    if (!m) {
        rc = ksv_err_set(err, 404, "model %s not found", model);
    } else if (!rev) {
        rc = ksv_err_set(err, 404, "model %s has no revision %s", model, revision);
    } else if (!rev->ops || !rev->ops->proxied) {
        rc = ksv_err_set(err, 409, "revision %s runs in the engine (%s); only external "
                                   "runtimes have logs", revision, rev->spec.runtime);
    } else {
        ksv_sb_puts(sb, "{\"model\":");
        ksv_sb_json_str(sb, model);
        ksv_sb_puts(sb, ",\"revision\":");
        ksv_sb_json_str(sb, revision);
        ksv_sb_printf(sb, ",\"revision_state\":\"%s\"", ksv_rev_state_name(rev->state));
        if (rev->error[0]) {
            ksv_sb_puts(sb, ",\"error\":");
            ksv_sb_json_str(sb, rev->error);
        }
        ksv_sb_puts(sb, ",\"runtime\":");
        if (rev->handle && !rev->loader_busy)
            ksv_ext_write_logs(rev->handle, sb);
        else
            ksv_sb_puts(sb, "null");
        ksv_sb_putc(sb, '}');
    }
    pthread_rwlock_unlock(&reg->lock);
    return rc;
}

bool ksv_registry_mirror_route(ksv_registry *reg, const ksv_route *served, uint64_t *rng,
                               ksv_route *out)
{
    bool due = false;
    pthread_rwlock_rdlock(&reg->lock);
    ksv_engine_model *m = served->model;
    ksv_engine_revision *rev = m && !m->deleted ? m->mirror : NULL;
    if (rev && rev != served->rev && is_loaded(rev) &&
        (int)(ksv_splitmix64(rng) % 100) < m->mirror_weight) {
        atomic_fetch_add_explicit(&rev->inflight, 1, memory_order_acq_rel);
        out->rev = rev;
        out->model = m;
        due = true;
    }
    pthread_rwlock_unlock(&reg->lock);
    return due;
}

void ksv_registry_finish_mirror(ksv_route *route, int status, double seconds, uint64_t rows,
                                uint64_t diff_rows)
{
    ksv_engine_revision *rev = route->rev;
    atomic_fetch_add_explicit(&rev->mirror_codes[ksv_code_slot(status)], 1,
                              memory_order_relaxed);
    ksv_hist_record(&rev->mirror_latency, seconds);
    atomic_fetch_add_explicit(&rev->mirror_rows, rows, memory_order_relaxed);
    atomic_fetch_add_explicit(&rev->mirror_diff_rows, diff_rows, memory_order_relaxed);
    atomic_fetch_sub_explicit(&rev->inflight, 1, memory_order_acq_rel);
    route->rev = NULL;
    route->model = NULL;
}

unsigned ksv_registry_mirror_worker(const ksv_registry *reg)
{
    return reg->workers;
}

void ksv_registry_write_openai_models(ksv_registry *reg, ksv_sb *sb)
{
    pthread_rwlock_rdlock(&reg->lock);
    ksv_sb_puts(sb, "{\"object\":\"list\",\"data\":[");
    bool first = true;
    for (size_t i = 0; i < reg->n_models; i++) {
        ksv_engine_model *m = reg->models[i];
        bool openai = false;
        for (size_t r = 0; r < m->n_revs && !openai; r++)
            openai = (ksv_ext_spec_protocols(m->revs[r]->spec.external) & KSV_PROTO_OPENAI) != 0;
        if (!openai)
            continue;
        ksv_sb_puts(sb, first ? "{\"id\":" : ",{\"id\":");
        first = false;
        ksv_sb_json_str(sb, m->spec.name);
        ksv_sb_printf(sb, ",\"object\":\"model\",\"owned_by\":\"ksv\",\"ready\":%s}",
                      m->n_split > 0 ? "true" : "false");
    }
    ksv_sb_puts(sb, "]}");
    pthread_rwlock_unlock(&reg->lock);
}
