/* resource_quota.c: Kubernetes ResourceQuota documents (apiVersion v1) in ksv manifests.
 *
 * Read: metadata.name, metadata.namespace (default "default"), spec.hard with the keys ksv
 * enforces per namespace: count/inferenceservices.serving.kserve.io, requests.memory,
 * requests.nvidia.com/gpu. Other hard keys and spec fields (scopes, scopeSelector) are kept
 * and listed once as not acted on, as for InferenceServices. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/field_limits.h"
#include "common/manifest_tree.h"

typedef struct qctx {
    const char *file;
    ksv_err *err;
    ksv_resource_quota *q;
} qctx;

static int qfail(qctx *c, const mnode *at, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int qfail(qctx *c, const mnode *at, const char *path, const char *fmt, ...)
{
    char reason[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return ksv_err_set(c->err, 400, "%s:%d:%d: %s: %s", c->file, at ? at->line : 1,
                       at ? at->col : 1, path, reason);
}

static int qoom(qctx *c)
{
    return ksv_err_set(c->err, 500, "%s: out of memory", c->file);
}

static int note(qctx *c, const char *path)
{
    char **grown = realloc(c->q->not_acted_on, (c->q->n_not_acted_on + 1) * sizeof *grown);
    if (!grown)
        return qoom(c);
    c->q->not_acted_on = grown;
    if (!(grown[c->q->n_not_acted_on] = strdup(path)))
        return qoom(c);
    c->q->n_not_acted_on++;
    return 0;
}

static int want_string(qctx *c, const mnode *n, const char *path, char **out)
{
    if (!n || n->type != MN_STRING)
        return qfail(c, n, path, "expected a string, found %s",
                     n ? mn_type_name(n->type) : "nothing");
    free(*out);
    if (!(*out = strdup(n->str)))
        return qoom(c);
    return 0;
}

/* A quantity as Kubernetes writes one: a string, or a plain number. */
static const char *quantity_text(const mnode *n, char *buf, size_t cap)
{
    if (n->type == MN_STRING)
        return n->str;
    if (n->type == MN_INT && n->i >= 0) {
        snprintf(buf, cap, "%lld", (long long)n->i);
        return buf;
    }
    return NULL;
}

static int read_hard(qctx *c, const mnode *hard)
{
    if (hard->type != MN_MAP)
        return qfail(c, hard, "spec.hard", "expected a map, found %s", mn_type_name(hard->type));
    ksv_resource_quota *q = c->q;
    for (size_t k = 0; k < hard->n; k++) {
        const mn_entry *e = &hard->entries[k];
        char path[200], buf[32];
        snprintf(path, sizeof path, "spec.hard[%s]", e->key);
        const char *text = quantity_text(e->value, buf, sizeof buf);
        if (strcmp(e->key, KSV_QUOTA_COUNT_ISVC) == 0 ||
            strcmp(e->key, KSV_QUOTA_REQUESTS_GPU) == 0) {
            char *end;
            errno = 0;
            long long n = text ? strtoll(text, &end, 10) : -1;
            if (!text || !isdigit((unsigned char)text[0]) || *end || errno || n < 0)
                return qfail(c, e->value, path, "expected a whole number, found %s",
                             text ? text : mn_type_name(e->value->type));
            if (e->key[0] == 'c') {
                q->has_count = true;
                q->count = n;
            } else {
                q->has_gpu = true;
                q->gpu = n;
            }
        } else if (strcmp(e->key, KSV_QUOTA_REQUESTS_MEMORY) == 0) {
            if (!text || ksv_parse_memory_quantity(text, &q->memory_bytes) != 0)
                return qfail(c, e->value, path,
                             "\"%s\" is not a memory quantity (e.g. 512Mi, 2Gi, 1G)",
                             text ? text : mn_type_name(e->value->type));
            q->has_memory = true;
        } else if (note(c, path)) {
            return -1;
        }
    }
    if (!q->has_count && !q->has_memory && !q->has_gpu)
        return qfail(c, hard, "spec.hard",
                     "names none of " KSV_QUOTA_COUNT_ISVC ", " KSV_QUOTA_REQUESTS_MEMORY
                     ", " KSV_QUOTA_REQUESTS_GPU);
    return 0;
}

static int read_quota(qctx *c, const mnode *root)
{
    ksv_resource_quota *q = c->q;
    const mnode *api = mn_map_get(root, "apiVersion");
    if (!api || api->type != MN_STRING || strcmp(api->str, "v1") != 0)
        return qfail(c, api ? api : root, "apiVersion",
                     "a ResourceQuota is apiVersion v1, found %s",
                     api && api->type == MN_STRING ? api->str : "none");
    const mnode *meta = mn_map_get(root, "metadata");
    if (!meta || meta->type != MN_MAP)
        return qfail(c, meta ? meta : root, "metadata", "expected a map with a name");
    if (want_string(c, mn_map_get(meta, "name"), "metadata.name", &q->name))
        return -1;
    const char *why = ksv_dns_label_problem(q->name, KSV_DNS_LABEL_MAX);
    if (why)
        return qfail(c, mn_map_get(meta, "name"), "metadata.name", "\"%s\" %s", q->name, why);
    const mnode *ns = mn_map_get(meta, "namespace");
    if (ns && ns->type != MN_NULL) {
        if (want_string(c, ns, "metadata.namespace", &q->namespace_name))
            return -1;
        if ((why = ksv_dns_label_problem(q->namespace_name, KSV_NAMESPACE_MAX)))
            return qfail(c, ns, "metadata.namespace", "\"%s\" %s", q->namespace_name, why);
    } else if (!(q->namespace_name = strdup("default"))) {
        return qoom(c);
    }
    const mnode *spec = mn_map_get(root, "spec");
    if (!spec || spec->type != MN_MAP)
        return qfail(c, spec ? spec : root, "spec", "expected a map with hard limits");
    const mnode *hard = NULL;
    for (size_t k = 0; k < spec->n; k++) {
        char path[200];
        snprintf(path, sizeof path, "spec.%s", spec->entries[k].key);
        if (strcmp(spec->entries[k].key, "hard") == 0)
            hard = spec->entries[k].value;
        else if (note(c, path))
            return -1;
    }
    if (!hard)
        return qfail(c, spec, "spec.hard", "missing: say what the namespace may use");
    return read_hard(c, hard);
}

int ksv_manifest_read_quota_(const mnode *root, int line, const char *file,
                             ksv_manifest_list *out, ksv_err *err)
{
    ksv_resource_quota *grown =
        realloc(out->quotas, (out->n_quotas + 1) * sizeof *grown);
    if (!grown)
        return ksv_err_set(err, 500, "%s: out of memory", file);
    out->quotas = grown;
    ksv_resource_quota *q = &out->quotas[out->n_quotas++];
    memset(q, 0, sizeof *q);
    q->line = line;
    if (!(q->source = strdup(file)))
        return ksv_err_set(err, 500, "%s: out of memory", file);
    qctx c = {file, err, q};
    if (read_quota(&c, root))
        return -1;
    for (size_t k = 0; k + 1 < out->n_quotas; k++)
        if (strcmp(out->quotas[k].name, q->name) == 0 &&
            strcmp(out->quotas[k].namespace_name, q->namespace_name) == 0)
            return qfail(&c, mn_map_get(mn_map_get(root, "metadata"), "name"), "metadata.name",
                         "ResourceQuota %s/%s is defined twice in this file (first at line %d)",
                         q->namespace_name, q->name, out->quotas[k].line);
    return 0;
}

void ksv_resource_quota_free(ksv_resource_quota *q)
{
    free(q->source);
    free(q->name);
    free(q->namespace_name);
    for (size_t k = 0; k < q->n_not_acted_on; k++)
        free(q->not_acted_on[k]);
    free(q->not_acted_on);
    memset(q, 0, sizeof *q);
}
