/* quota.c: Kubernetes ResourceQuota per namespace, enforced by `ksv apply` before anything is
 * stored, and reported by `ksv get quota`.
 *
 * Usage of a namespace, as a cluster at rest would count its pods' requests: each
 * InferenceService counts once for count/inferenceservices.serving.kserve.io, and its
 * current spec (its newest revision) counts its predictor's resources.requests; a request
 * left out defaults to the limit, as Kubernetes defaults a container's requests to its
 * limits. An apply is refused whole when, for a limited resource it requests, what the rest
 * of the namespace uses plus what the file asks for exceeds the hard limit, with kubectl's
 * wording. Quotas in the same file take effect for the file's InferenceServices. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "control/control_internal.h"

typedef struct usage {
    int64_t count;
    uint64_t memory;
    int64_t gpu;
} usage;

/* The predictor's requests (or limits) from a revision's canonical spec. */
static void revision_usage(const char *spec_json, usage *u)
{
    json_object *root = json_tokener_parse(spec_json ? spec_json : "{}"), *pred, *model, *res;
    if (root && json_object_object_get_ex(root, "predictor", &pred) &&
        json_object_object_get_ex(pred, "model", &model) &&
        json_object_object_get_ex(model, "resources", &res)) {
        bool have_mem = false, have_gpu = false;
        static const char *const lists[] = {"requests", "limits"};
        for (int k = 0; k < 2; k++) {
            json_object *l, *v;
            if (!json_object_object_get_ex(res, lists[k], &l))
                continue;
            uint64_t bytes;
            if (!have_mem && json_object_object_get_ex(l, "memory", &v) &&
                ksv_parse_memory_quantity(json_object_get_string(v), &bytes) == 0) {
                u->memory += bytes;
                have_mem = true;
            }
            if (!have_gpu && json_object_object_get_ex(l, "nvidia.com/gpu", &v)) {
                u->gpu += json_object_get_int64(v);
                have_gpu = true;
            }
        }
    }
    json_object_put(root);
}

/* The same figures from a manifest being applied. */
static void isvc_usage(const ksv_isvc *spec, usage *u)
{
    if (spec->requests.has_memory)
        u->memory += spec->requests.memory_bytes;
    else if (spec->limits.has_memory)
        u->memory += spec->limits.memory_bytes;
    if (spec->requests.has_gpu)
        u->gpu += spec->requests.gpu;
    else if (spec->limits.has_gpu)
        u->gpu += spec->limits.gpu;
}

static bool in_file(const ksv_manifest_list *list, const char *ns, const char *name)
{
    for (size_t i = 0; i < list->n; i++)
        if (strcmp(list->items[i].namespace_name, ns) == 0 &&
            strcmp(list->items[i].name, name) == 0)
            return true;
    return false;
}

/* What namespace ns uses now: every stored model counts; the memory and GPUs of those the
 * file re-applies are left out (the file's new specs replace them). */
static int namespace_usage(ksv_ctl *ctl, const char *ns, const ksv_manifest_list *list,
                           usage *u, ksv_err *err)
{
    memset(u, 0, sizeof *u);
    ksv_model_record_list models;
    if (ksv_store_model_list(ctl->store, ns, &models, err) != 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < models.n && rc == 0; i++) {
        u->count++;
        if (list && in_file(list, ns, models.items[i].name))
            continue;
        ksv_revision_record rev;
        int f = ksv_store_revision_latest(ctl->store, models.items[i].id, &rev, err);
        if (f < 0) {
            rc = -1;
        } else if (f == 1) {
            revision_usage(rev.spec_json, u);
            ksv_revision_record_clear(&rev);
        }
    }
    ksv_model_record_list_free(&models);
    return rc;
}

void ksv_quota_format_bytes(uint64_t bytes, char *out, size_t cap)
{
    static const struct {
        const char *suffix;
        uint64_t unit;
    } units[] = {{"Ti", 1ull << 40}, {"Gi", 1ull << 30}, {"Mi", 1ull << 20}, {"Ki", 1ull << 10}};
    for (size_t k = 0; k < sizeof units / sizeof *units; k++)
        if (bytes >= units[k].unit && bytes % units[k].unit == 0) {
            snprintf(out, cap, "%" PRIu64 "%s", bytes / units[k].unit, units[k].suffix);
            return;
        }
    snprintf(out, cap, "%" PRIu64, bytes);
}

static int exceeded(ksv_err *err, const char *quota, const char *key, const char *requested,
                    const char *used, const char *limited)
{
    return ksv_err_set(err, 403,
                       "exceeded quota: %s, requested: %s=%s, used: %s=%s, limited: %s=%s",
                       quota, key, requested, key, used, key, limited);
}

/* The quotas of ns: stored ones, replaced or joined by the file's. */
static int effective_quotas(ksv_ctl *ctl, const char *ns, const ksv_manifest_list *list,
                            ksv_quota_list *out, ksv_err *err)
{
    if (ksv_store_quota_list(ctl->store, ns, out, err) != 0)
        return -1;
    for (size_t k = 0; k < list->n_quotas; k++) {
        const ksv_resource_quota *fq = &list->quotas[k];
        if (strcmp(fq->namespace_name, ns) != 0)
            continue;
        ksv_quota *q = NULL;
        for (size_t i = 0; i < out->n && !q; i++)
            if (strcmp(out->items[i].name, fq->name) == 0)
                q = &out->items[i];
        if (!q) {
            ksv_quota *grown = realloc(out->items, (out->n + 1) * sizeof *grown);
            if (!grown)
                return ksv_err_set(err, 500, "out of memory");
            out->items = grown;
            q = &out->items[out->n++];
            memset(q, 0, sizeof *q);
            if (!(q->ns = strdup(ns)) || !(q->name = strdup(fq->name)))
                return ksv_err_set(err, 500, "out of memory");
        }
        q->count = fq->has_count ? fq->count : -1;
        q->memory_bytes = fq->has_memory ? (int64_t)fq->memory_bytes : -1;
        q->gpu = fq->has_gpu ? fq->gpu : -1;
    }
    return 0;
}

static int check_namespace(ksv_ctl *ctl, const char *ns, const ksv_manifest_list *list,
                           ksv_err *err)
{
    ksv_quota_list quotas;
    if (effective_quotas(ctl, ns, list, &quotas, err) != 0) {
        ksv_quota_list_free(&quotas);
        return -1;
    }
    int rc = 0;
    usage used, asked = {0};
    if (quotas.n > 0 && namespace_usage(ctl, ns, list, &used, err) != 0)
        rc = -1;
    for (size_t i = 0; quotas.n > 0 && rc == 0 && i < list->n; i++) {
        const ksv_isvc *spec = &list->items[i];
        if (strcmp(spec->namespace_name, ns) != 0)
            continue;
        ksv_model_record existing;
        ksv_err ignored;
        if (ksv_store_model_get(ctl->store, ns, spec->name, &existing, &ignored) == 0)
            ksv_model_record_clear(&existing);
        else
            asked.count++; /* a new InferenceService */
        isvc_usage(spec, &asked);
    }
    for (size_t k = 0; rc == 0 && k < quotas.n; k++) {
        const ksv_quota *q = &quotas.items[k];
        char a[32], u[32], l[32];
        if (q->count >= 0 && asked.count > 0 && used.count + asked.count > q->count) {
            snprintf(a, sizeof a, "%" PRId64, asked.count);
            snprintf(u, sizeof u, "%" PRId64, used.count);
            snprintf(l, sizeof l, "%" PRId64, q->count);
            rc = exceeded(err, q->name, KSV_QUOTA_COUNT_ISVC, a, u, l);
        } else if (q->memory_bytes >= 0 && asked.memory > 0 &&
                   used.memory + asked.memory > (uint64_t)q->memory_bytes) {
            ksv_quota_format_bytes(asked.memory, a, sizeof a);
            ksv_quota_format_bytes(used.memory, u, sizeof u);
            ksv_quota_format_bytes((uint64_t)q->memory_bytes, l, sizeof l);
            rc = exceeded(err, q->name, KSV_QUOTA_REQUESTS_MEMORY, a, u, l);
        } else if (q->gpu >= 0 && asked.gpu > 0 && used.gpu + asked.gpu > q->gpu) {
            snprintf(a, sizeof a, "%" PRId64, asked.gpu);
            snprintf(u, sizeof u, "%" PRId64, used.gpu);
            snprintf(l, sizeof l, "%" PRId64, q->gpu);
            rc = exceeded(err, q->name, KSV_QUOTA_REQUESTS_GPU, a, u, l);
        }
    }
    ksv_quota_list_free(&quotas);
    return rc;
}

int ctl_quota_admit(ksv_ctl *ctl, const ksv_manifest_list *list, ksv_err *err)
{
    for (size_t i = 0; i < list->n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(list->items[j].namespace_name, list->items[i].namespace_name) == 0;
        if (!seen && check_namespace(ctl, list->items[i].namespace_name, list, err) != 0)
            return -1;
    }
    for (size_t k = 0; k < list->n_quotas; k++) {
        const ksv_resource_quota *fq = &list->quotas[k];
        ksv_quota q = {
            .ns = fq->namespace_name,
            .name = fq->name,
            .count = fq->has_count ? fq->count : -1,
            .memory_bytes = fq->has_memory ? (int64_t)fq->memory_bytes : -1,
            .gpu = fq->has_gpu ? fq->gpu : -1,
        };
        if (ksv_store_quota_put(ctl->store, &q, err) != 0)
            return -1;
    }
    return 0;
}

int ksv_ctl_quota_list(ksv_ctl *ctl, const char *ns, ksv_quota_usage_list *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    ksv_quota_list quotas;
    if (ksv_store_quota_list(ctl->store, ns, &quotas, err) != 0)
        return -1;
    out->items = calloc(quotas.n ? quotas.n : 1, sizeof *out->items);
    if (!out->items) {
        ksv_quota_list_free(&quotas);
        return ksv_err_set(err, 500, "out of memory");
    }
    int rc = 0;
    for (size_t i = 0; i < quotas.n && rc == 0; i++) {
        ksv_quota_usage *q = &out->items[i];
        usage u;
        rc = namespace_usage(ctl, quotas.items[i].ns, NULL, &u, err);
        q->quota = quotas.items[i];
        memset(&quotas.items[i], 0, sizeof quotas.items[i]); /* moved */
        q->used_count = u.count;
        q->used_memory_bytes = u.memory;
        q->used_gpu = u.gpu;
        out->n++;
    }
    ksv_quota_list_free(&quotas);
    if (rc != 0)
        ksv_quota_usage_list_free(out);
    return rc;
}

void ksv_quota_usage_list_free(ksv_quota_usage_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        ksv_quota_clear(&l->items[i].quota);
    free(l->items);
    memset(l, 0, sizeof *l);
}

void ksv_quota_usage_text(const ksv_quota_usage *u, char *out, size_t cap)
{
    const ksv_quota *q = &u->quota;
    size_t len = 0;
    out[0] = '\0';
    char used[32], hard[32];
    for (int k = 0; k < 3; k++) {
        const char *key;
        if (k == 0 && q->count >= 0) {
            key = KSV_QUOTA_COUNT_ISVC;
            snprintf(used, sizeof used, "%" PRId64, u->used_count);
            snprintf(hard, sizeof hard, "%" PRId64, q->count);
        } else if (k == 1 && q->memory_bytes >= 0) {
            key = KSV_QUOTA_REQUESTS_MEMORY;
            ksv_quota_format_bytes(u->used_memory_bytes, used, sizeof used);
            ksv_quota_format_bytes((uint64_t)q->memory_bytes, hard, sizeof hard);
        } else if (k == 2 && q->gpu >= 0) {
            key = KSV_QUOTA_REQUESTS_GPU;
            snprintf(used, sizeof used, "%" PRId64, u->used_gpu);
            snprintf(hard, sizeof hard, "%" PRId64, q->gpu);
        } else {
            continue;
        }
        int n = snprintf(out + len, cap - len, "%s%s: %s/%s", len ? ", " : "", key, used, hard);
        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
    }
}
