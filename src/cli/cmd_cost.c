/* cmd_cost.c: `ksv cost [--since DURATION] [--gpu-hour-price P] [--gb-hour-price P]`: what
 * each model revision held and cost, from the engines' residency events (control/cost.h
 * says what each figure means). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/listing.h"

static const char *two_places(char *buf, size_t cap, double v)
{
    snprintf(buf, cap, "%.2f", v);
    return buf;
}

#define HOURS_COL(NAME, FIELD)                                                  \
    static const char *NAME##_text(const void *row, char *buf, size_t cap)     \
    {                                                                           \
        return two_places(buf, cap, ((const ksv_cost_row *)row)->FIELD);       \
    }                                                                           \
    static void NAME##_json(const void *row, const char *key, json_object *o)  \
    {                                                                           \
        json_object_object_add(o, key,                                          \
                               json_object_new_double(((const ksv_cost_row *)row)->FIELD)); \
    }

HOURS_COL(loaded, loaded_hours)
HOURS_COL(idle, idle_loaded_hours)
HOURS_COL(zero, scaled_to_zero_hours)
HOURS_COL(gbh, memory_gb_hours)
HOURS_COL(gpugbh, gpu_memory_gb_hours)
HOURS_COL(saved, saved_gb_hours)
HOURS_COL(cost, cost)

static const char *requests_text(const void *row, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.0f", ((const ksv_cost_row *)row)->requests);
    return buf;
}

static void requests_json(const void *row, const char *key, json_object *o)
{
    double r = ((const ksv_cost_row *)row)->requests;
    json_object_object_add(o, key, json_object_new_int64((int64_t)(r + 0.5)));
}

static const ksv_column cost_columns[] = {
    KSV_COL_CHARS("NAMESPACE", "namespace", ksv_cost_row, ns),
    KSV_COL_CHARS("MODEL", "model", ksv_cost_row, model),
    KSV_COL_CHARS("REVISION", "revision", ksv_cost_row, revision),
    KSV_COL_FN("LOADED-H", "loaded_hours", loaded_text, loaded_json),
    KSV_COL_FN("IDLE-H", "idle_loaded_hours", idle_text, idle_json),
    KSV_COL_FN("ZERO-H", "scaled_to_zero_hours", zero_text, zero_json),
    KSV_COL_FN("GB-H", "memory_gb_hours", gbh_text, gbh_json),
    KSV_COL_FN("GPU-GB-H", "gpu_memory_gb_hours", gpugbh_text, gpugbh_json),
    KSV_COL_FN("SAVED-GB-H", "saved_gb_hours", saved_text, saved_json),
    KSV_COL_FN("REQUESTS", "requests", requests_text, requests_json),
    KSV_COL_FN("COST", "cost", cost_text, cost_json),
};

/* "24h", "90m", "3600s", "3600" or "7d" in seconds; -1 when none of these. */
static double since_seconds(const char *text)
{
    size_t n = strlen(text);
    if (n > 1 && text[n - 1] == 'd') {
        char *end;
        errno = 0;
        long long days = strtoll(text, &end, 10);
        return end == text + n - 1 && !errno && days > 0 && days <= 36500 && text[0] != '+'
                   ? (double)days * 86400.0
                   : -1;
    }
    int64_t s;
    return ksv_parse_duration_s(text, &s) == 0 && s > 0 ? (double)s : -1;
}

static int cost(ksv_cli *cli, const ksv_args *a)
{
    ksv_cost_query q = {
        .since_s = 86400,
        .ns = cli->ns,
        .gpu_hour_price = ksv_args_number(a, "--gpu-hour-price", -1),
        .gb_hour_price = ksv_args_number(a, "--gb-hour-price", -1),
    };
    const char *since = ksv_args_get(a, "--since");
    if (since && (q.since_s = since_seconds(since)) < 0)
        return ksv_usage_text(cli, "--since: expected a duration such as 24h, 90m or 7d", NULL);
    ksv_ctl *ctl;
    if (ksv_cli_open(cli, &ctl))
        return 1;
    ksv_cost_report r;
    ksv_err err;
    if (ksv_ctl_cost(ctl, &q, &r, &err) != 0) {
        ksv_ctl_close(ctl);
        return ksv_fail("%s", err.msg);
    }
    for (size_t i = 0; i < r.n_warnings; i++)
        fprintf(stderr, "ksv cost: %s (its stored events still count)\n", r.warnings[i]);
    for (size_t i = 0; i < r.n; i++)
        if (!r.rows[i].ns[0])
            snprintf(r.rows[i].ns, sizeof r.rows[i].ns, "-");
    if (cli->json) {
        ksv_listing_print(cli, cost_columns, sizeof cost_columns / sizeof *cost_columns,
                          r.rows, r.n, sizeof *r.rows);
    } else {
        /* The table ends with the sums. */
        ksv_cost_row *rows = calloc(r.n + 1, sizeof *rows);
        if (rows) {
            memcpy(rows, r.rows, r.n * sizeof *rows);
            rows[r.n] = r.total;
            snprintf(rows[r.n].ns, sizeof rows[r.n].ns, "TOTAL");
            ksv_listing_table(cost_columns, sizeof cost_columns / sizeof *cost_columns, rows,
                              r.n + 1, sizeof *rows);
            free(rows);
        }
        printf("prices: %.4f per GB-hour, %.4f per GPU-hour (--gb-hour-price, "
               "--gpu-hour-price or the config file)\n",
               r.gb_hour_price, r.gpu_hour_price);
    }
    ksv_cost_report_free(&r);
    ksv_ctl_close(ctl);
    return 0;
}

static const ksv_opt cost_opts[] = {
    KSV_OPT_STR("--since"),
    KSV_OPT_NUM("--gpu-hour-price", KSV_OPT_DOUBLE, 0, 1e9,
                "--gpu-hour-price: expected a price, 0 or more"),
    KSV_OPT_NUM("--gb-hour-price", KSV_OPT_DOUBLE, 0, 1e9,
                "--gb-hour-price: expected a price, 0 or more"),
    {0},
};

static const ksv_cmd_entry cost_entries[] = {
    {.opts = cost_opts, .max_args = 0, .named_option_errors = true, .exec = cost},
    {0},
};

const ksv_cmd_group ksv_cmd_group_cost = {
    .name = "cost",
    .usage = "cost [--since DURATION] [--gpu-hour-price P] [--gb-hour-price P] [-n NS] [-o json]",
    .entries = cost_entries,
};
