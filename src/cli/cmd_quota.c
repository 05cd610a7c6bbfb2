/* cmd_quota.c: `ksv get quota [-n NS]`: each ResourceQuota with what its namespace uses,
 * in kubectl's shape (REQUEST column "resource: used/hard, ..."). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/listing.h"

typedef struct quota_row {
    const ksv_quota_usage *q;
    char request[512];
} quota_row;

static const char *ns_text(const void *row, char *buf, size_t cap)
{
    return ((const quota_row *)row)->q->quota.ns;
}

static const char *name_text(const void *row, char *buf, size_t cap)
{
    return ((const quota_row *)row)->q->quota.name;
}

static const char *age_text(const void *row, char *buf, size_t cap)
{
    ksv_cli_format_age(((const quota_row *)row)->q->quota.created_at_ms, buf, cap);
    return buf;
}

/* "namespace", "name", "hard": {...}, "used": {...}: quantities as Kubernetes writes them. */
static void quota_json(const void *row, const char *key, json_object *o)
{
    const ksv_quota_usage *u = ((const quota_row *)row)->q;
    const ksv_quota *q = &u->quota;
    json_object_object_add(o, "namespace", json_object_new_string(q->ns));
    json_object_object_add(o, "name", json_object_new_string(q->name));
    json_object *hard = json_object_new_object(), *used = json_object_new_object();
    char b[32];
    if (q->count >= 0) {
        snprintf(b, sizeof b, "%" PRId64, q->count);
        json_object_object_add(hard, KSV_QUOTA_COUNT_ISVC, json_object_new_string(b));
        snprintf(b, sizeof b, "%" PRId64, u->used_count);
        json_object_object_add(used, KSV_QUOTA_COUNT_ISVC, json_object_new_string(b));
    }
    if (q->memory_bytes >= 0) {
        ksv_quota_format_bytes((uint64_t)q->memory_bytes, b, sizeof b);
        json_object_object_add(hard, KSV_QUOTA_REQUESTS_MEMORY, json_object_new_string(b));
        ksv_quota_format_bytes(u->used_memory_bytes, b, sizeof b);
        json_object_object_add(used, KSV_QUOTA_REQUESTS_MEMORY, json_object_new_string(b));
    }
    if (q->gpu >= 0) {
        snprintf(b, sizeof b, "%" PRId64, q->gpu);
        json_object_object_add(hard, KSV_QUOTA_REQUESTS_GPU, json_object_new_string(b));
        snprintf(b, sizeof b, "%" PRId64, u->used_gpu);
        json_object_object_add(used, KSV_QUOTA_REQUESTS_GPU, json_object_new_string(b));
    }
    json_object_object_add(o, "hard", hard);
    json_object_object_add(o, "used", used);
}

static const ksv_column quota_columns[] = {
    KSV_COL_FN("NAMESPACE", NULL, ns_text, NULL),
    KSV_COL_FN("NAME", NULL, name_text, NULL),
    KSV_COL_CHARS("REQUEST", NULL, quota_row, request),
    KSV_COL_FN("AGE", NULL, age_text, NULL),
    KSV_COL_FN(NULL, "quota", NULL, quota_json),
};

int ksv_cli_get_quota(ksv_cli *cli, const ksv_args *a)
{
    (void)a;
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    ksv_quota_usage_list list;
    ksv_err err;
    if (ksv_ctl_quota_list(ctl, cli->ns, &list, &err) != 0) {
        ksv_ctl_close(ctl);
        return ksv_fail("%s", err.msg);
    }
    quota_row *rows = calloc(list.n ? list.n : 1, sizeof *rows);
    int code = 0;
    if (!rows) {
        code = ksv_fail("out of memory");
    } else {
        for (size_t i = 0; i < list.n; i++) {
            rows[i].q = &list.items[i];
            ksv_quota_usage_text(&list.items[i], rows[i].request, sizeof rows[i].request);
        }
        ksv_listing_print(cli, quota_columns, sizeof quota_columns / sizeof *quota_columns, rows,
                          list.n, sizeof *rows);
    }
    free(rows);
    ksv_quota_usage_list_free(&list);
    ksv_ctl_close(ctl);
    return code;
}
