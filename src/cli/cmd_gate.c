/* cmd_gate.c: the release-gate parts of `ksv rollout` and `ksv apply --wait`: a gated
 * rollout's status on each node (phase, set and actual weight, step, each check against its
 * threshold, why it halted), the operator actions, and waiting for the outcome. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "common/sanitize.h"

static const char *str(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : "";
}

static int num(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_int(v) : 0;
}

/* Text from a node reaches the terminal only through the one sanitizer. */
typedef struct safe_text {
    char buf[512];
} safe_text;

static const char *safe(safe_text *t, const char *s)
{
    ksv_sanitize_copy(t->buf, sizeof t->buf, s ? s : "");
    return t->buf;
}

static void threshold_text(json_object *c, const char *key, char *buf, size_t cap)
{
    json_object *v;
    if (json_object_object_get_ex(c, key, &v) && v)
        snprintf(buf, cap, "%g", json_object_get_double(v));
    else
        snprintf(buf, cap, "-");
}

static void print_rollout(const char *node, json_object *ro)
{
    safe_text a, b;
    printf("  node %s: %s  step %d/%d  weight %d%% (actual %d%%)  failed checks %d/%d%s\n",
           safe(&a, node), safe(&b, str(ro, "phase")), num(ro, "step") + 1,
           num(ro, "steps"), num(ro, "set_weight"), num(ro, "actual_weight"),
           num(ro, "failed_checks"), num(ro, "threshold"),
           json_object_get_boolean(json_object_object_get(ro, "manual")) ? "  (promoted by hand)"
                                                                          : "");
    printf("    canary %s over stable %s\n", safe(&a, str(ro, "canary")),
           safe(&b, str(ro, "stable")));
    json_object *checks = json_object_object_get(ro, "checks");
    size_t n = json_object_is_type(checks, json_type_array) ? json_object_array_length(checks) : 0;
    if (n) {
        printf("    %-24s %10s %8s %8s %-13s %s\n", "METRIC", "VALUE", "MIN", "MAX", "VERDICT",
               "REQUESTS");
        for (size_t i = 0; i < n; i++) {
            json_object *c = json_object_array_get_idx(checks, i), *v;
            char value[32], lo[32], hi[32];
            if (json_object_object_get_ex(c, "value", &v) && v)
                snprintf(value, sizeof value, "%.2f", json_object_get_double(v));
            else
                snprintf(value, sizeof value, "-");
            threshold_text(c, "min", lo, sizeof lo);
            threshold_text(c, "max", hi, sizeof hi);
            printf("    %-24s %10s %8s %8s %-13s %lld\n", safe(&a, str(c, "metric")), value,
                   lo, hi, safe(&b, str(c, "verdict")),
                   (long long)json_object_get_int64(json_object_object_get(c, "requests")));
        }
    }
    if (*str(ro, "reason"))
        printf("    reason: %s\n", safe(&a, str(ro, "reason")));
}

int ksv_cli_gate_status(ksv_cli *cli, ksv_ctl *ctl, const char *model, json_object *into)
{
    json_object *st;
    ksv_err err;
    if (ksv_ctl_gate_status(ctl, model, cli->ns, &st, &err) != 0)
        return ksv_fail("%s", err.msg);
    if (into) {
        json_object_object_add(into, "gate", st);
        return 0;
    }
    json_object *nodes = json_object_object_get(st, "nodes"), *canary;
    bool any = false;
    for (size_t i = 0; i < json_object_array_length(nodes); i++)
        any |= json_object_object_get(json_object_array_get_idx(nodes, i), "rollout") != NULL;
    json_object_object_get_ex(st, "canary", &canary);
    if (!any && !canary) {
        json_object_put(st);
        return 0;
    }
    safe_text a, b;
    printf("\nRelease gate%s%s%s:\n", canary ? " (Canary " : "",
           canary ? safe(&a, json_object_get_string(canary)) : "", canary ? ")" : "");
    for (size_t i = 0; i < json_object_array_length(nodes); i++) {
        json_object *e = json_object_array_get_idx(nodes, i), *ro;
        const char *node = str(e, "node");
        if (json_object_object_get_ex(e, "rollout", &ro) && ro)
            print_rollout(node, ro);
        else if (*str(e, "error"))
            printf("  node %s: unreachable: %s\n", safe(&a, node), safe(&b, str(e, "error")));
        else
            printf("  node %s: no gated rollout yet\n", safe(&a, node));
    }
    json_object_put(st);
    return 0;
}

int ksv_cli_wave_status(ksv_cli *cli, ksv_ctl *ctl, const char *model, json_object *into)
{
    json_object *st;
    ksv_err err;
    if (ksv_ctl_wave_status(ctl, model, cli->ns, &st, &err) != 0)
        return ksv_fail("%s", err.msg);
    if (into) {
        json_object_object_add(into, "waves", st);
        return 0;
    }
    if (!st)
        return 0;
    safe_text a, b;
    int waves = json_object_get_int(json_object_object_get(st, "waves"));
    printf("\nWaves (%s, %d):\n", safe(&a, str(st, "revision")), waves);
    json_object *nodes = json_object_object_get(st, "nodes");
    for (size_t i = 0; i < json_object_array_length(nodes); i++) {
        json_object *e = json_object_array_get_idx(nodes, i);
        printf("  node %s: wave %d/%d %s\n", safe(&a, str(e, "node")),
               json_object_get_int(json_object_object_get(e, "wave")), waves,
               safe(&b, str(e, "phase")));
    }
    json_object_put(st);
    return 0;
}

/* Whether some node runs (or ran and failed) a gated rollout of the model. */
bool ksv_cli_gate_active(ksv_cli *cli, ksv_ctl *ctl, const char *model, bool include_failed)
{
    json_object *st;
    ksv_err err;
    if (ksv_ctl_gate_status(ctl, model, cli->ns, &st, &err) != 0)
        return false;
    json_object *nodes = json_object_object_get(st, "nodes");
    bool active = false;
    for (size_t i = 0; i < json_object_array_length(nodes); i++) {
        json_object *ro = json_object_object_get(json_object_array_get_idx(nodes, i), "rollout");
        const char *phase = ro ? str(ro, "phase") : "";
        active |= *phase && strcmp(phase, "Succeeded") != 0 &&
                  (include_failed || strcmp(phase, "Failed") != 0);
    }
    json_object_put(st);
    return active;
}

int ksv_cli_gate_wait(ksv_cli *cli, ksv_ctl *ctl, const char *model)
{
    char phase[32];
    ksv_err err;
    int rc = ksv_ctl_gate_wait(ctl, model, cli->ns, cli->timeout_s, phase, sizeof phase, &err);
    if (rc != 0)
        return ksv_fail("%s: gated rollout %s: %s", model, phase, err.msg);
    if (!cli->json)
        printf("%s: gated rollout %s\n", model, phase);
    return 0;
}
