/* test_manifest_canary.c: Flagger Canary documents read by the manifest reader
 * (common/manifest_canary.c): the fields acted on, Flagger's other fields listed as not acted
 * on, the engine policy made from one (parsed back with json-c), and broken documents
 * refused with the file, line and field. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/manifest.h"
#include "ktest.h"

static const char isvc[] =
    "apiVersion: serving.kserve.io/v1beta1\n"
    "kind: InferenceService\n"
    "metadata: {name: churn}\n"
    "spec:\n"
    "  predictor:\n"
    "    model: {modelFormat: {name: xgboost}, storageUri: /models/churn}\n";

static const char good[] =
    "---\n"
    "apiVersion: flagger.app/v1beta1\n"
    "kind: Canary\n"
    "metadata: {name: churn, namespace: default}\n"
    "spec:\n"
    "  targetRef: {apiVersion: serving.kserve.io/v1beta1, kind: InferenceService, name: churn}\n"
    "  progressDeadlineSeconds: 120\n"
    "  service: {port: 80}\n"
    "  analysis:\n"
    "    interval: 1m30s\n"
    "    threshold: 3\n"
    "    stepWeight: 10\n"
    "    maxWeight: 50\n"
    "    webhooks: []\n"
    "    metrics:\n"
    "    - {name: request-success-rate, thresholdRange: {min: 99}, interval: 1m}\n"
    "    - name: request-duration\n"
    "      thresholdRange: {max: 500}\n"
    "      minRequests: 20\n";

static int parse(const char *text, ksv_manifest_list *list, ksv_err *err)
{
    return ksv_manifest_parse_buffer(text, strlen(text), "gate.yaml", "/base", list, err);
}

/* A broken variant of doc (find replaced by replace) is refused, the error naming want. */
typedef struct refused_case {
    const char *find, *replace; /* an edit of the good document */
    const char *want;           /* text the error must contain (line and field) */
} refused_case;

static void check_refused(const char *doc, const refused_case *cases, size_t n,
                          const char *label)
{
    for (size_t i = 0; i < n; i++) {
        char text[4096];
        const char *at = strstr(doc, cases[i].find);
        if (!at) {
            KT_FAIL("%s %zu: %s not in the document", label, i, cases[i].find);
            continue;
        }
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - doc), doc, cases[i].replace,
                 at + strlen(cases[i].find));
        ksv_manifest_list list;
        ksv_err err;
        ksv_err_clear(&err);
        int rc = parse(text, &list, &err);
        KT_CHECK(rc != 0 && strstr(err.msg, cases[i].want) && strstr(err.msg, "gate.yaml:"),
                 "%s %zu refused naming %s: %s", label, i, cases[i].want,
                 rc ? err.msg : "(accepted)");
        if (rc == 0)
            ksv_manifest_list_free(&list);
    }
}

static void test_good(void)
{
    char text[4096];
    snprintf(text, sizeof text, "%s%s", isvc, good);
    ksv_manifest_list list;
    ksv_err err;
    if (parse(text, &list, &err) != 0) {
        KT_FAIL("good Canary refused: %s", err.msg);
        return;
    }
    KT_CHECK(list.n == 1 && list.n_canaries == 1, "one InferenceService and one Canary");
    const ksv_canary *c = ksv_manifest_find_canary(&list, "default", "churn");
    KT_CHECK(c != NULL, "the Canary is found by its target");
    if (!c) {
        ksv_manifest_list_free(&list);
        return;
    }
    KT_CHECK(c->interval_s == 90 && c->threshold == 3 && c->step_weight == 10 &&
                 c->max_weight == 50 && c->progress_deadline_s == 120,
             "analysis fields read (interval %g)", c->interval_s);
    KT_CHECK(c->n_metrics == 2 && c->metrics[0].has_min && c->metrics[0].min == 99 &&
                 c->metrics[0].interval_s == 60 && c->metrics[0].min_requests == 100 &&
                 c->metrics[1].has_max && c->metrics[1].max == 500 &&
                 c->metrics[1].min_requests == 20,
             "metrics read with minRequests default 100");
    bool service = false, webhooks = false;
    for (size_t i = 0; i < c->n_not_acted_on; i++) {
        service |= strcmp(c->not_acted_on[i], "spec.service") == 0;
        webhooks |= strcmp(c->not_acted_on[i], "spec.analysis.webhooks") == 0;
    }
    KT_CHECK(service && webhooks, "Flagger fields ksv does not act on are listed");
    ksv_sb notes;
    ksv_sb_init(&notes);
    ksv_manifest_format_notes(&list, &notes);
    KT_CHECK(notes.data && strstr(notes.data, "Canary default/churn: not acted on: spec.service"),
             "notes name them once: %s", notes.data ? notes.data : "");
    ksv_sb_free(&notes);
    char *policy = ksv_canary_policy_json(c, "churn-00002", "churn-00001");
    json_object *p = policy ? json_tokener_parse(policy) : NULL;
    json_object *v;
    KT_CHECK(p && json_object_object_get_ex(p, "canary", &v) &&
                 strcmp(json_object_get_string(v), "churn-00002") == 0 &&
                 json_object_object_get_ex(p, "step_weight", &v) && json_object_get_int(v) == 10 &&
                 json_object_object_get_ex(p, "interval_s", &v) &&
                 json_object_get_double(v) == 90 &&
                 json_object_object_get_ex(p, "metrics", &v) &&
                 json_object_array_length(v) == 2,
             "engine policy JSON: %s", policy ? policy : "(null)");
    json_object_put(p);
    free(policy);
    ksv_manifest_list_free(&list);

    /* A file with only a Canary is fine (its target may be in another file). */
    KT_CHECK(parse(good, &list, &err) == 0 && list.n == 0 && list.n_canaries == 1,
             "a Canary alone in a file is read");
    ksv_manifest_list_free(&list);

    /* Flagger's skipAnalysis is acted on (the engine promotes once ready), not listed. */
    char skip[4096];
    const char *at = strstr(good, "  progressDeadlineSeconds");
    snprintf(skip, sizeof skip, "%.*s  skipAnalysis: true\n%s", (int)(at - good), good, at);
    int rc = parse(skip, &list, &err);
    c = rc == 0 ? ksv_manifest_find_canary(&list, "default", "churn") : NULL;
    policy = c ? ksv_canary_policy_json(c, "churn-00002", NULL) : NULL;
    bool listed = false;
    for (size_t i = 0; c && i < c->n_not_acted_on; i++)
        listed |= strcmp(c->not_acted_on[i], "spec.skipAnalysis") == 0;
    KT_CHECK(c && c->skip_analysis && !listed && policy &&
                 strstr(policy, "\"skip_analysis\":true"),
             "skipAnalysis: true reaches the engine policy: %s", policy ? policy : err.msg);
    free(policy);
    if (rc == 0)
        ksv_manifest_list_free(&list);
}

static void test_bad(void)
{
    static const refused_case cases[] = {
        {"request-duration\n", "request-latency\n", "gate.yaml:17:"},
        {"request-duration\n", "request-latency\n", "unknown metric"},
        {"name: churn}\n  progress", "name: nothing_here}\n  progress", "spec.targetRef.name"},
        {"kind: InferenceService, name", "kind: Deployment, name", "spec.targetRef.kind"},
        {"stepWeight: 10", "stepWeight: 0", "gate.yaml:12:17: spec.analysis.stepWeight"},
        {"stepWeight: 10", "stepWeight: 101", "spec.analysis.stepWeight"},
        {"interval: 1m30s", "interval: 500ms", "gate.yaml:10:15: spec.analysis.interval"},
        {"interval: 1m30s", "interval: soon", "spec.analysis.interval"},
        {"thresholdRange: {max: 500}", "thresholdRange: {}", "spec.analysis.metrics[1].thresholdRange"},
        {"      thresholdRange: {max: 500}\n", "", "spec.analysis.metrics[1].thresholdRange"},
        {"{min: 99}", "{min: 120}", "spec.analysis.metrics[0].thresholdRange.min"},
        {"threshold: 3", "threshold: lots", "spec.analysis.threshold"},
        {"flagger.app/v1beta1", "flagger.app/v1alpha3", "apiVersion"},
        {"request-success-rate, thresholdRange: {min: 99}", "prediction-disagreement, thresholdRange: {max: 0.1}", "spec.analysis.mirror"},
        {"maxWeight: 50", "maxWeight: 5", "above maxWeight"},
        {"  progressDeadlineSeconds", "  skipAnalysis: sometimes\n  progressDeadlineSeconds",
         "gate.yaml:7:17: spec.skipAnalysis"},
    };
    check_refused(good, cases, sizeof cases / sizeof *cases, "case");
}

/* kubectl's `kind: List`: Canary (and ResourceQuota) documents sit among its items, in
 * YAML or JSON, and a broken one is refused with the line inside the List. */
static void test_list(void)
{
    static const char yaml_list[] =
        "apiVersion: v1\n"
        "kind: List\n"
        "items:\n"
        "- apiVersion: serving.kserve.io/v1beta1\n"
        "  kind: InferenceService\n"
        "  metadata: {name: churn}\n"
        "  spec:\n"
        "    predictor:\n"
        "      model: {modelFormat: {name: xgboost}, storageUri: /models/churn}\n"
        "- apiVersion: flagger.app/v1beta1\n"
        "  kind: Canary\n"
        "  metadata: {name: churn-gate}\n"
        "  spec:\n"
        "    targetRef: {apiVersion: serving.kserve.io/v1beta1, kind: InferenceService, "
        "name: churn}\n"
        "    analysis:\n"
        "      interval: 10s\n"
        "      stepWeights: [20, 60]\n"
        "      metrics:\n"
        "      - {name: request-success-rate, thresholdRange: {min: 99}}\n"
        "- apiVersion: v1\n"
        "  kind: ResourceQuota\n"
        "  metadata: {name: q}\n"
        "  spec: {hard: {count/inferenceservices.serving.kserve.io: \"4\"}}\n";
    ksv_manifest_list list;
    ksv_err err;
    int rc = parse(yaml_list, &list, &err);
    KT_CHECK(rc == 0 && list.n == 1 && list.n_canaries == 1 && list.n_quotas == 1,
             "a YAML List with an InferenceService, a Canary and a ResourceQuota: %s",
             rc ? err.msg : "read");
    if (rc == 0) {
        const ksv_canary *c = ksv_manifest_find_canary(&list, "default", "churn");
        KT_CHECK(c && c->line == 10 && c->n_step_weights == 2 && c->step_weights[1] == 60 &&
                     c->interval_s == 10,
                 "the Canary in the List gates churn, named by its own line (%d)",
                 c ? c->line : -1);
        ksv_manifest_list_free(&list);
    }

    static const char json_list[] =
        "{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [\n"
        " {\"apiVersion\": \"flagger.app/v1beta1\", \"kind\": \"Canary\",\n"
        "  \"metadata\": {\"name\": \"g\", \"namespace\": \"prod\"},\n"
        "  \"spec\": {\"targetRef\": {\"apiVersion\": \"serving.kserve.io/v1beta1\",\n"
        "   \"kind\": \"InferenceService\", \"name\": \"churn\"},\n"
        "   \"analysis\": {\"interval\": \"5s\", \"stepWeight\": 25, \"maxWeight\": 50,\n"
        "    \"metrics\": [{\"name\": \"request-duration\", \"thresholdRange\": {\"max\": 20}}]}}}\n"
        "]}\n";
    rc = ksv_manifest_parse_buffer(json_list, strlen(json_list), "gate.json", "/base", &list,
                                   &err);
    KT_CHECK(rc == 0 && list.n == 0 && list.n_canaries == 1 &&
                 ksv_manifest_find_canary(&list, "prod", "churn"),
             "a JSON List holding a Canary alone: %s", rc ? err.msg : "read");
    if (rc == 0)
        ksv_manifest_list_free(&list);

    /* Broken input inside a List: file, the line inside the List, and the field. */
    static const refused_case list_cases[] = {
        {"stepWeights: [20, 60]", "stepWeight: 0", "gate.yaml:17:19: spec.analysis.stepWeight"},
        {"interval: 10s", "interval: 100ms", "gate.yaml:16:17: spec.analysis.interval"},
        {"request-success-rate, thresholdRange: {min: 99}", "request-latency",
         "gate.yaml:19:"},
        {"kind: InferenceService, name: churn}", "kind: Deployment, name: churn}",
         "spec.targetRef.kind"},
        {"- apiVersion: flagger.app/v1beta1\n  kind: Canary\n",
         "- apiVersion: v1\n  kind: List\n", "gate.yaml:11:9: kind: a List inside a List"},
        {"- apiVersion: v1\n  kind: ResourceQuota", "- null\n- apiVersion: v1\n  kind: ResourceQuota",
         "gate.yaml:20:"},
    };
    check_refused(yaml_list, list_cases, sizeof list_cases / sizeof *list_cases, "list case");

    /* A List and a second document gating the same model: refused, nothing half-read. */
    char twice[4096];
    snprintf(twice, sizeof twice, "%s%s", yaml_list, good);
    ksv_err_clear(&err);
    rc = parse(twice, &list, &err);
    KT_CHECK(rc != 0 && strstr(err.msg, "gated twice"), "two Canaries for churn: %s",
             rc ? err.msg : "(accepted)");
    if (rc == 0)
        ksv_manifest_list_free(&list);
}

int main(void)
{
    test_good();
    test_bad();
    test_list();
    return kt_summary("test_manifest_canary");
}
