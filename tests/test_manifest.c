/* test_manifest.c: InferenceService manifests (src/common/manifest*.c).
 *
 * Checks the typed specs read from tests/manifests/ (plain, canary, scale settings, several
 * documents, JSON, List, KServe's framework shorthand, anchors), the "original" document
 * against json-c's own reading of the same JSON, canonical JSON equality for equivalent
 * manifests and inequality for a changed model, the YAML rendering round trip, a table of
 * broken manifests refused with FILE:LINE:COL: reason, and hostile input (alias bombs, huge,
 * deep, binary, truncated and mutated files) refused without crashing.
 * Files are found under $KSV_SRCDIR, else the compile-time KSV_SRCDIR, else ".". */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/manifest.h"
#include "common/manifest_tree.h"

#include "ktest.h"

#ifndef KSV_SRCDIR
#define KSV_SRCDIR "."
#endif

static const char *srcdir(void)
{
    const char *env = getenv("KSV_SRCDIR");
    return env && *env ? env : KSV_SRCDIR;
}

static char *src_path(const char *rel)
{
    static char paths[16][PATH_MAX];
    static int next;
    char *out = paths[next++ % 16];
    snprintf(out, PATH_MAX, "%s/%s", srcdir(), rel);
    return out;
}

/* The oracle for a resolved local storage path: realpath() of the folder it sits in. */
static char *expected_abs(const char *dir_rel, const char *tail)
{
    static char out[2][PATH_MAX + 256];
    static int next;
    char resolved[PATH_MAX];
    char *slot = out[next++ % 2];
    if (!realpath(src_path(dir_rel), resolved))
        snprintf(resolved, sizeof resolved, "<%s missing>", dir_rel);
    snprintf(slot, PATH_MAX + 256, "%.4000s%s%.200s", resolved, *tail ? "/" : "", tail);
    return slot;
}

static int load(const char *rel, ksv_manifest_list *list)
{
    ksv_err err = {0};
    int rc = ksv_manifest_load_file(src_path(rel), list, &err);
    if (rc != 0)
        printf("   (%s: %s)\n", rel, err.msg);
    return rc;
}

static bool str_eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static bool has_not_acted(const ksv_isvc *spec, const char *path)
{
    size_t n;
    const char *const *list = ksv_isvc_not_acted_on(spec, &n);
    for (size_t k = 0; k < n; k++)
        if (strcmp(list[k], path) == 0)
            return true;
    return false;
}

static const char *annotation(const ksv_isvc *spec, const char *key)
{
    for (size_t k = 0; k < spec->n_annotations; k++)
        if (strcmp(spec->annotations[k].key, key) == 0)
            return spec->annotations[k].value;
    return NULL;
}

/* Follows a dotted path of object keys in a json-c object. */
static json_object *jpath(json_object *obj, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *key = strtok_r(buf, ".", &save); key && obj;
         key = strtok_r(NULL, ".", &save)) {
        json_object *next = NULL;
        if (!json_object_object_get_ex(obj, key, &next))
            return NULL;
        obj = next;
    }
    return obj;
}

static const char *jstr(json_object *obj, const char *path)
{
    json_object *v = jpath(obj, path);
    return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Keys of every object ascend bytewise (json-c keeps the order it read). */
static bool keys_sorted(json_object *obj)
{
    if (json_object_is_type(obj, json_type_array)) {
        for (size_t k = 0; k < json_object_array_length(obj); k++)
            if (!keys_sorted(json_object_array_get_idx(obj, k)))
                return false;
        return true;
    }
    if (!json_object_is_type(obj, json_type_object))
        return true;
    const char *prev = NULL;
    json_object_object_foreach(obj, key, value) {
        if (prev && strcmp(prev, key) >= 0)
            return false;
        if (!keys_sorted(value))
            return false;
        prev = key;
    }
    return true;
}

static char *canonical_of(const char *rel, size_t index)
{
    ksv_manifest_list list;
    if (load(rel, &list) != 0)
        return NULL;
    char *out = index < list.n ? ksv_manifest_canonical_json(&list.items[index]) : NULL;
    ksv_manifest_list_free(&list);
    return out;
}

/* ---- good manifests ---------------------------------------------------------------------- */

static void test_plain(void)
{
    ksv_manifest_list yaml, json;
    KT_CHECK(load("tests/manifests/plain.yaml", &yaml) == 0 && yaml.n == 1,
             "plain.yaml reads one spec");
    if (yaml.n != 1)
        return;
    const ksv_isvc *s = &yaml.items[0];
    KT_CHECK(str_eq(s->name, "xgboost-iris") && str_eq(s->namespace_name, "kserve-test"),
             "plain: name and namespace");
    KT_CHECK(str_eq(s->model_format, "xgboost") && !s->shorthand, "plain: model form, xgboost");
    KT_CHECK(str_eq(s->runtime, "auto") && s->runtime_mapped &&
                 str_eq(s->runtime_written, "kserve-xgbserver"),
             "plain: kserve-xgbserver mapped to auto");
    KT_CHECK(s->storage_kind == KSV_STORAGE_LOCAL &&
                 str_eq(s->storage_uri, expected_abs("tests/manifests", "models/iris/model.json")),
             "plain: relative storageUri resolved against the manifest's folder (%s)",
             s->storage_uri);
    KT_CHECK(str_eq(s->storage_uri_written, "models/iris/model.json"),
             "plain: URI as written kept");
    KT_CHECK(!s->has_canary && s->min_replicas == 1 && !s->has_min_replicas &&
                 s->max_replicas == 0 && s->rollback_window_s == 600 && !s->sha256 && !s->nodes,
             "plain: defaults");
    KT_CHECK(s->n_not_acted_on == 0, "plain: every field acted on");
    KT_CHECK(s->line == 1, "plain: document starts at line 1 (got %d)", s->line);
    ksv_sb notes;
    ksv_sb_init(&notes);
    ksv_manifest_format_notes(&yaml, &notes);
    KT_CHECK(notes.data && strstr(notes.data, "kserve-test/xgboost-iris: runtime kserve-xgbserver "
                                              "mapped to auto") &&
                 !strstr(notes.data, "not acted on"),
             "plain: notes say the runtime was mapped");
    ksv_sb_free(&notes);

    /* The same manifest as JSON: the kept document must be what json-c reads from it. */
    KT_CHECK(load("tests/manifests/plain.json", &json) == 0 && json.n == 1, "plain.json reads");
    if (json.n == 1) {
        json_object *oracle = json_object_from_file(src_path("tests/manifests/plain.json"));
        KT_CHECK(oracle && json_object_equal(oracle, json.items[0].original),
                 "plain.json: original equals json-c's reading of the file");
        KT_CHECK(json_object_equal(yaml.items[0].original, json.items[0].original),
                 "plain.yaml and plain.json keep the same document");
        char *a = ksv_manifest_canonical_json(&yaml.items[0]);
        char *b = ksv_manifest_canonical_json(&json.items[0]);
        KT_CHECK(a && b && strcmp(a, b) == 0, "plain.yaml and plain.json: same canonical JSON");
        free(a);
        free(b);
        json_object_put(oracle);
        ksv_manifest_list_free(&json);
    }
    ksv_manifest_list_free(&yaml);
}

static void test_canary(void)
{
    ksv_manifest_list list;
    KT_CHECK(load("tests/manifests/canary.yaml", &list) == 0 && list.n == 1, "canary.yaml reads");
    if (list.n != 1)
        return;
    const ksv_isvc *s = &list.items[0];
    KT_CHECK(s->has_canary && s->canary_percent == 10, "canary: 10%%");
    KT_CHECK(str_eq(s->namespace_name, "default"), "canary: namespace defaults to default");
    KT_CHECK(s->storage_kind == KSV_STORAGE_HTTP &&
                 str_eq(s->storage_uri, "https://models.example.com/my-model/v2/model.json"),
             "canary: https URI kept as written");
    KT_CHECK(!s->runtime_written && str_eq(s->runtime, "auto") && !s->runtime_mapped,
             "canary: runtime defaults to auto");
    ksv_manifest_list s3;
    KT_CHECK(load("tests/manifests/s3.yaml", &s3) == 0 && s3.n == 1 &&
                 s3.items[0].storage_kind == KSV_STORAGE_HTTP &&
                 str_eq(s3.items[0].storage_uri, "s3://models/fraud"),
             "an s3:// URI is kept as written, for the engine to fetch");
    ksv_manifest_list_free(&s3);
    char *canon = ksv_manifest_canonical_json(s);
    KT_CHECK(canon && !strstr(canon, "canaryTrafficPercent"),
             "canary: canaryTrafficPercent is not part of the revision identity");
    free(canon);
    ksv_manifest_list_free(&list);
}

static void test_scale(void)
{
    ksv_manifest_list list;
    KT_CHECK(load("tests/manifests/scale.yaml", &list) == 0 && list.n == 1, "scale.yaml reads");
    if (list.n != 1)
        return;
    const ksv_isvc *s = &list.items[0];
    KT_CHECK(s->has_min_replicas && s->min_replicas == 0 && s->has_max_replicas &&
                 s->max_replicas == 4,
             "scale: minReplicas 0, maxReplicas 4");
    KT_CHECK(s->has_scale_target && s->scale_target == 100 && str_eq(s->scale_metric, "rps"),
             "scale: scaleMetric rps, scaleTarget 100");
    KT_CHECK(s->has_container_concurrency && s->container_concurrency == 8 && s->has_timeout &&
                 s->timeout_s == 60,
             "scale: containerConcurrency 8, timeout 60");
    KT_CHECK(str_eq(s->model_format, "xgboost") && str_eq(s->model_format_version, "1"),
             "scale: modelFormat XGBoost read as xgboost, version \"1\"");
    KT_CHECK(str_eq(s->runtime, "ksv-forest") && !s->runtime_mapped, "scale: ksv-forest accepted");
    KT_CHECK(str_eq(s->protocol_version, "v2"), "scale: protocolVersion v2");
    KT_CHECK(s->storage_kind == KSV_STORAGE_LOCAL &&
                 str_eq(s->storage_uri, "/srv/models/flowers/model.json"),
             "scale: file:// URI becomes its absolute path");
    KT_CHECK(s->limits.has_gpu && s->limits.gpu == 1 && s->limits.has_memory &&
                 str_eq(s->limits.memory, "2Gi") && s->limits.memory_bytes == 2ull << 30,
             "scale: limits nvidia.com/gpu \"1\", memory 2Gi = %llu bytes",
             (unsigned long long)s->limits.memory_bytes);
    KT_CHECK(s->requests.has_gpu && s->requests.gpu == 1 &&
                 s->requests.memory_bytes == 512ull << 20,
             "scale: requests nvidia.com/gpu 1, memory 512Mi");
    KT_CHECK(s->n_nodes == 2 && str_eq(s->nodes[0], "gpu-a") && str_eq(s->nodes[1], "gpu-b"),
             "scale: ksv.io/nodes split and trimmed");
    char lower[65];
    const char *written = annotation(s, "ksv.io/sha256");
    for (int k = 0; written && k < 64; k++)
        lower[k] = (char)tolower((unsigned char)written[k]);
    lower[64] = '\0';
    KT_CHECK(written && str_eq(s->sha256, lower), "scale: ksv.io/sha256 kept, lowercased");
    KT_CHECK(s->rollback_window_s == 600, "scale: ksv.io/rollback-window 10m = 600 s");
    KT_CHECK(s->scale_window_s == 90 && s->scale_retention_s == 120 && s->cold_start_queue == 20,
             "scale: Knative window 90s, retention 2m, cold-start queue 20 (%lld %lld %lld)",
             (long long)s->scale_window_s, (long long)s->scale_retention_s,
             (long long)s->cold_start_queue);
    KT_CHECK(str_eq(annotation(s, "serving.kserve.io/deploymentMode"), "Serverless"),
             "scale: other annotations kept");

    static const char *const expect_listed[] = {
        "metadata.labels",
        "metadata.annotations[serving.kserve.io/deploymentMode]",
        "spec.predictor.logger",
        "spec.predictor.model.modelFormat.version",
        "spec.predictor.model.protocolVersion",
        "spec.predictor.model.resources.limits.cpu",
    };
    static const char *const expect_acted[] = {
        "spec.predictor.containerConcurrency", "spec.predictor.timeout",
        "spec.predictor.minReplicas",          "spec.predictor.maxReplicas",
        "spec.predictor.scaleMetric",          "spec.predictor.scaleTarget",
        "spec.predictor.model.storageUri",     "spec.predictor.model.runtime",
        "spec.predictor.model.modelFormat",    "spec.predictor.model.modelFormat.name",
        "metadata.annotations[ksv.io/nodes]",  "metadata.name",
    };
    for (size_t k = 0; k < sizeof expect_listed / sizeof *expect_listed; k++)
        KT_CHECK(has_not_acted(s, expect_listed[k]), "scale: %s listed as not acted on",
                 expect_listed[k]);
    for (size_t k = 0; k < sizeof expect_acted / sizeof *expect_acted; k++)
        KT_CHECK(!has_not_acted(s, expect_acted[k]), "scale: %s is acted on", expect_acted[k]);
    KT_CHECK(s->n_not_acted_on == sizeof expect_listed / sizeof *expect_listed,
             "scale: nothing else listed (%zu listed)", s->n_not_acted_on);
    ksv_sb notes;
    ksv_sb_init(&notes);
    ksv_manifest_format_notes(&list, &notes);
    KT_CHECK(notes.data &&
                 strstr(notes.data, "ml/flowers-sample: not acted on: metadata.labels, ") &&
                 strstr(notes.data, "spec.predictor.model.resources.limits.cpu\n"),
             "scale: one not-acted-on line");
    ksv_sb_free(&notes);

    json_object *logger_mode = jpath(s->original, "spec.predictor.logger.mode");
    KT_CHECK(str_eq(json_object_get_string(logger_mode), "all"),
             "scale: unknown field spec.predictor.logger kept in the original");
    char *canon = ksv_manifest_canonical_json(s);
    json_object *parsed = canon ? json_tokener_parse(canon) : NULL;
    json_object *gpu = jpath(parsed, "predictor.model.resources.limits");
    json_object *gpu_count = NULL;
    if (gpu)
        json_object_object_get_ex(gpu, "nvidia.com/gpu", &gpu_count);
    KT_CHECK(json_object_is_type(gpu_count, json_type_int) && json_object_get_int(gpu_count) == 1,
             "scale: canonical GPU count is the integer 1");
    KT_CHECK(str_eq(jstr(parsed, "predictor.logger.url"), "http://message-dumper.default/") &&
                 str_eq(jstr(parsed, "sha256"), s->sha256),
             "scale: canonical keeps unknown predictor fields and the sha256 pin");
    json_object_put(parsed);
    free(canon);
    ksv_manifest_list_free(&list);
}

static void test_multi(void)
{
    ksv_manifest_list list;
    KT_CHECK(load("tests/manifests/multi.yaml", &list) == 0 && list.n == 3,
             "multi.yaml: three specs, the empty document skipped");
    if (list.n != 3)
        return;
    KT_CHECK(str_eq(list.items[0].name, "fraud") && str_eq(list.items[1].name, "churn") &&
                 str_eq(list.items[2].name, "fraud") &&
                 str_eq(list.items[2].namespace_name, "staging"),
             "multi: names in file order; fraud twice in two namespaces is fine");
    KT_CHECK(list.items[0].line == 3 && list.items[1].line == 15 && list.items[2].line == 26,
             "multi: documents start at lines 3, 15, 26 (got %d, %d, %d)", list.items[0].line,
             list.items[1].line, list.items[2].line);
    KT_CHECK(list.items[1].has_canary && list.items[1].canary_percent == 0,
             "multi: canaryTrafficPercent 0 (a rollback) is kept as set");
    KT_CHECK(list.items[2].shorthand &&
                 str_eq(list.items[2].storage_uri,
                        expected_abs("tests/manifests", "models/fraud/model.json")),
             "multi: shorthand document");
    KT_CHECK(str_eq(list.items[0].storage_uri, expected_abs("tests/manifests", "models/fraud")),
             "multi: ./models/fraud normalized (%s)", list.items[0].storage_uri);
    ksv_manifest_list_free(&list);
}

static void test_list_json(void)
{
    ksv_manifest_list list;
    KT_CHECK(load("tests/manifests/list.json", &list) == 0 && list.n == 2, "list.json: two items");
    if (list.n != 2)
        return;
    KT_CHECK(str_eq(list.items[0].name, "iris") && list.items[0].n_nodes == 1 &&
                 str_eq(list.items[0].nodes[0], "local"),
             "list: iris placed on node local");
    KT_CHECK(str_eq(list.items[0].storage_uri, expected_abs("tests", "models/iris")),
             "list: ../models/iris resolved (%s)", list.items[0].storage_uri);
    KT_CHECK(list.items[0].line == 5 && list.items[1].line == 12,
             "list: items at lines 5 and 12 (got %d, %d)", list.items[0].line, list.items[1].line);
    KT_CHECK(list.items[1].has_canary && list.items[1].canary_percent == 25 &&
                 list.items[1].storage_kind == KSV_STORAGE_HTTP,
             "list: churn canary 25%% over http");
    KT_CHECK(has_not_acted(&list.items[1], "status"), "list: status kept, listed as not acted on");
    json_object *oracle = json_object_from_file(src_path("tests/manifests/list.json"));
    json_object *items = jpath(oracle, "items");
    KT_CHECK(items &&
                 json_object_equal(json_object_array_get_idx(items, 1), list.items[1].original),
             "list: item original equals json-c's reading");
    json_object_put(oracle);
    ksv_manifest_list_free(&list);
}

static void test_shorthand_compat(void)
{
    ksv_manifest_list list;
    ksv_err err = {0};
    const char *compat = src_path("data/compat/kserve-xgboost-iris/xgboost.yaml");
    int rc = ksv_manifest_load_file(compat, &list, &err);
    KT_CHECK(rc == 0 && list.n == 1 && list.items[0].storage_kind == KSV_STORAGE_HTTP &&
                 str_eq(list.items[0].storage_uri, "gs://kfserving-examples/models/xgboost/iris"),
             "KServe's xgboost.yaml reads unchanged, its gs:// URI for the engine to fetch (%s)",
             rc ? err.msg : "");
    if (rc == 0)
        ksv_manifest_list_free(&list);

    KT_CHECK(load("tests/manifests/xgboost-iris-local.yaml", &list) == 0 && list.n == 1,
             "KServe's xgboost.yaml with a local storageUri reads");
    if (list.n != 1)
        return;
    const ksv_isvc *s = &list.items[0];
    KT_CHECK(s->shorthand && str_eq(s->name, "xgboost-iris") &&
                 str_eq(s->model_format, "xgboost") && str_eq(s->protocol_version, "v2") &&
                 str_eq(s->runtime, "auto"),
             "compat: shorthand read as an xgboost model, protocol v2, runtime auto");
    KT_CHECK(str_eq(s->storage_uri, expected_abs("data/compat/kserve-xgboost-iris", "model.json")),
             "compat: storageUri resolves to the model file (%s)", s->storage_uri);
    KT_CHECK(has_not_acted(s, "spec.predictor.xgboost.protocolVersion") && s->n_not_acted_on == 1,
             "compat: protocolVersion listed as not acted on");
    ksv_manifest_list_free(&list);
}

static void test_anchors(void)
{
    ksv_manifest_list list;
    KT_CHECK(load("tests/manifests/anchors.yaml", &list) == 0 && list.n == 1, "anchors.yaml reads");
    if (list.n != 1)
        return;
    const ksv_isvc *s = &list.items[0];
    KT_CHECK(str_eq(annotation(s, "app"), "anchored") && str_eq(annotation(s, "tier"), "online"),
             "anchors: merge key fills annotations, the written key wins");
    KT_CHECK(str_eq(jstr(s->original, "spec.predictor.logger.url"), "models/anchored/model.json"),
             "anchors: alias resolved to the anchored string");
    ksv_manifest_list_free(&list);
}

static void test_canonical(void)
{
    char *a = canonical_of("tests/manifests/same-a.yaml", 0);
    char *b = canonical_of("tests/manifests/same-b.yaml", 0);
    char *c = canonical_of("tests/manifests/same-c.json", 0);
    char *changed = canonical_of("tests/manifests/same-changed.yaml", 0);
    KT_CHECK(a && b && strcmp(a, b) == 0,
             "canonical: shorthand == model form with other key order, file://, ./, .., //, mapped "
             "runtime, explicit defaults and a canary");
    KT_CHECK(a && c && strcmp(a, c) == 0, "canonical: YAML shorthand == JSON model form");
    KT_CHECK(a && changed && strcmp(a, changed) != 0, "canonical: a changed storageUri differs");

    /* The expected identity, built independently with json-c. */
    json_object *expect = json_object_new_object();
    json_object *pred = json_object_new_object();
    json_object *model = json_object_new_object();
    json_object *format = json_object_new_object();
    json_object_object_add(format, "name", json_object_new_string("xgboost"));
    json_object_object_add(model, "modelFormat", format);
    json_object_object_add(model, "protocolVersion", json_object_new_string("v2"));
    json_object_object_add(model, "runtime", json_object_new_string("auto"));
    json_object_object_add(model, "storageUri", json_object_new_string(
                                                    expected_abs("tests/manifests", "models/same/model.json")));
    json_object_object_add(pred, "model", model);
    json_object_object_add(pred, "minReplicas", json_object_new_int(1));
    json_object_object_add(pred, "maxReplicas", json_object_new_int(0));
    json_object_object_add(pred, "containerConcurrency", json_object_new_int(0));
    json_object_object_add(expect, "predictor", pred);
    json_object *parsed = a ? json_tokener_parse(a) : NULL;
    KT_CHECK(parsed && json_object_equal(parsed, expect), "canonical: content is %s", a ? a : "-");
    KT_CHECK(parsed && keys_sorted(parsed) && !strchr(a, ' ') && !strchr(a, '\n'),
             "canonical: keys sorted, no whitespace");
    json_object_put(parsed);
    json_object_put(expect);

    char *again = canonical_of("tests/manifests/same-a.yaml", 0);
    KT_CHECK(a && again && strcmp(a, again) == 0,
             "canonical: the same file twice gives the same text");
    free(again);
    free(a);
    free(b);
    free(c);
    free(changed);
}

/* Rendering to YAML and reading it back gives the same identity and settings. */
static void test_round_trip(void)
{
    static const char *const files[] = {
        "tests/manifests/plain.yaml",    "tests/manifests/plain.json",
        "tests/manifests/canary.yaml",   "tests/manifests/scale.yaml",
        "tests/manifests/multi.yaml",    "tests/manifests/list.json",
        "tests/manifests/anchors.yaml",  "tests/manifests/same-b.yaml",
        "tests/manifests/xgboost-iris-local.yaml", "data/manifests/demo.yaml",
        "data/manifests/churn-canary.yaml",
    };
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        ksv_manifest_list list;
        if (load(files[f], &list) != 0) {
            KT_CHECK(0, "round trip: %s reads", files[f]);
            continue;
        }
        for (size_t k = 0; k < list.n; k++) {
            const ksv_isvc *s = &list.items[k];
            ksv_sb yaml;
            ksv_sb_init(&yaml);
            int rc = ksv_manifest_to_yaml(s, &yaml);
            ksv_manifest_list back;
            ksv_err err = {0};
            int rc2 = rc == 0 ? ksv_manifest_parse_buffer(yaml.data, yaml.len, "rendered.yaml",
                                                          "/nonexistent", &back, &err)
                              : -1;
            bool same = false;
            if (rc2 == 0 && back.n == 1) {
                const ksv_isvc *r = &back.items[0];
                char *c1 = ksv_manifest_canonical_json(s);
                char *c2 = ksv_manifest_canonical_json(r);
                same = c1 && c2 && strcmp(c1, c2) == 0 && str_eq(r->name, s->name) &&
                       str_eq(r->namespace_name, s->namespace_name) &&
                       r->has_canary == s->has_canary &&
                       r->canary_percent == s->canary_percent &&
                       r->n_annotations == s->n_annotations && !r->shorthand &&
                       str_eq(r->runtime, s->runtime);
                free(c1);
                free(c2);
                ksv_manifest_list_free(&back);
            } else if (rc2 == 0) {
                ksv_manifest_list_free(&back);
            }
            KT_CHECK(same, "round trip: %s #%zu renders and reads back the same%s%s", files[f], k,
                     rc2 ? ": " : "", rc2 ? err.msg : "");
            if (!same && yaml.data)
                printf("%s\n", yaml.data);
            ksv_sb_free(&yaml);
        }
        ksv_manifest_list_free(&list);
    }
    /* One rendering, shown for the log. */
    ksv_manifest_list list;
    if (load("tests/manifests/scale.yaml", &list) == 0) {
        ksv_sb yaml;
        ksv_sb_init(&yaml);
        if (ksv_manifest_to_yaml(&list.items[0], &yaml) == 0)
            printf("   rendered scale.yaml:\n%s", yaml.data);
        ksv_sb_free(&yaml);
        ksv_manifest_list_free(&list);
    }
}

static void test_demo_manifests(void)
{
    static const struct {
        const char *file;
        const char *name;
        const char *model_dir;
        const char *model_file;
        int canary;
    } demos[] = {
        {"data/manifests/fraud.yaml", "fraud", "data/models/fraud", "model.json", -1},
        {"data/manifests/iris.yaml", "iris", "data/models/iris", "", -1},
        {"data/manifests/churn.yaml", "churn", "data/models/churn-v1", "model.json", -1},
        {"data/manifests/churn-canary.yaml", "churn", "data/models/churn-v2", "model.json", 20},
    };
    for (size_t k = 0; k < sizeof demos / sizeof *demos; k++) {
        ksv_manifest_list list;
        int rc = load(demos[k].file, &list);
        const ksv_isvc *s = rc == 0 ? &list.items[0] : NULL;
        KT_CHECK(
            s && list.n == 1 && str_eq(s->name, demos[k].name) &&
                str_eq(s->storage_uri, expected_abs(demos[k].model_dir, demos[k].model_file)) &&
                (demos[k].canary < 0 ? !s->has_canary
                                     : s->has_canary && s->canary_percent == demos[k].canary),
            "demo %s: %s at %s", demos[k].file, demos[k].name, s ? s->storage_uri : "-");
        if (rc == 0)
            ksv_manifest_list_free(&list);
    }
    ksv_manifest_list list;
    KT_CHECK(load("data/manifests/demo.yaml", &list) == 0 && list.n == 3,
             "demo.yaml: three models");
    if (list.n == 3)
        ksv_manifest_list_free(&list);
}

/* ---- broken manifests ---------------------------------------------------------------------- */

#define HDR "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n" /* lines 1-2 */
#define META "metadata:\n  name: m\n"                                          /* 3-4 */
#define PRED "spec:\n  predictor:\n"                                           /* 5-6 */
#define MODEL "    model:\n      modelFormat:\n        name: xgboost\n"        /* +3 */
#define URI "      storageUri: models/m\n"

typedef struct broken {
    const char *name;  /* display name; ".json" selects JSON */
    const char *text;
    int line, col;     /* expected position; col 0: not checked, line 0: neither */
    const char *reason; /* a substring of the message */
} broken;

static const broken broken_table[] = {
    {"syntax.yaml", HDR "metadata:\n  name: [unclosed\n" PRED, 5, 0, "YAML syntax error"},
    {"tabs.yaml", HDR "metadata:\n\tname: m\n", 4, 1, "YAML syntax error"},
    {"kind.yaml", "apiVersion: serving.kserve.io/v1alpha1\nkind: Pod\n" META, 2, 7,
     "kind: kind \"Pod\" is not supported"},
#define SR "apiVersion: serving.kserve.io/v1alpha1\nkind: ServingRuntime\nmetadata:\n  name: r\n"
#define SR_FORMATS "spec:\n  supportedModelFormats:\n    - name: sklearn\n"
    {"sr-no-spec.yaml", SR, 1, 0, "spec: missing"},
    {"sr-no-formats.yaml", SR "spec:\n  containers: []\n", 1, 0,
     "spec.supportedModelFormats: missing"},
    {"sr-no-command.yaml", SR SR_FORMATS "  containers:\n    - image: mlserver:1.7\n", 1, 0,
     "spec.containers[0].command: missing"},
    {"sr-no-containers.yaml", SR SR_FORMATS, 1, 0, "spec.containers: missing"},
    {"sr-protocol.yaml", SR SR_FORMATS "  protocolVersions: [v3]\n  containers:\n    - command: [x]\n",
     1, 0, "\"v3\" is not one of v1, v2"},
    {"sr-grpc-only.yaml", SR SR_FORMATS "  protocolVersions: [grpc-v2]\n  containers:\n    - command: [x]\n",
     1, 0, "gRPC-only runtime cannot be served"},
    {"sr-env.yaml", SR SR_FORMATS "  containers:\n    - command: [x]\n      env:\n        - name: A\n"
     "          valueFrom: {secretKeyRef: {name: s}}\n", 1, 0, "valueFrom: not available"},
    {"sr-api.yaml", "apiVersion: serving.kserve.io/v1beta1\nkind: ServingRuntime\nmetadata:\n  name: r\n",
     1, 0, "apiVersion: expected serving.kserve.io/v1alpha1"},
    {"no-kind.yaml", "apiVersion: serving.kserve.io/v1beta1\n" META, 1, 1, "kind: missing"},
    {"no-name.yaml", HDR "metadata:\n  namespace: ml\n" PRED MODEL URI, 4, 3,
     "metadata.name: missing"},
    {"bad-name.yaml", HDR "metadata:\n  name: My_Model\n" PRED MODEL URI, 4, 9,
     "not a DNS-1123 label"},
    {"dash-name.yaml", HDR "metadata:\n  name: -model\n" PRED MODEL URI, 4, 9,
     "must start and end with a letter or digit"},
    {"long-name.yaml",
     HDR "metadata:\n  name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
         PRED MODEL URI,
     4, 9, "(64 characters) is too long: at most 57"},
    {"v1alpha2.yaml", "apiVersion: serving.kserve.io/v1alpha2\nkind: InferenceService\n" META,
     1, 13, "older InferenceService API"},
    {"apiversion.yaml", "apiVersion: serving.kserve.io/v2\nkind: InferenceService\n" META, 1,
     13, "is not supported: expected serving.kserve.io/v1beta1"},
    {"no-uri.yaml", HDR META PRED MODEL, 8, 7, "spec.predictor.model.storageUri: missing"},
    {"sklearn.yaml", HDR META PRED "    model:\n      modelFormat:\n        name: sklearn\n"
     "      runtime: ksv-xgboost\n" URI,
     10, 16, "ksv-xgboost serves xgboost models only; model format sklearn needs a ServingRuntime"},
    {"sklearn-shorthand.yaml", HDR META PRED "    sklearn:\n      storageUri: gs://x\n", 7, 5,
     "spec.predictor.sklearn: the sklearn shorthand is not read: write spec.predictor.model"},
    {"lightgbm-xgboost.yaml", HDR META PRED "    model:\n      modelFormat:\n        name: lightgbm\n"
     "      runtime: ksv-xgboost\n" URI,
     10, 16, "ksv-xgboost serves xgboost models only; model format lightgbm runs on ksv-forest"},
    {"canary-101.yaml", HDR META PRED "    canaryTrafficPercent: 101\n" MODEL URI, 7, 27,
     "canaryTrafficPercent: must be between 0 and 100, found 101"},
    {"canary-neg.yaml", HDR META PRED "    canaryTrafficPercent: -1\n" MODEL URI, 7, 27,
     "must be between 0 and 100, found -1"},
    {"canary-abc.yaml", HDR META PRED "    canaryTrafficPercent: abc\n" MODEL URI, 7, 27,
     "expected an integer, found a string \"abc\""},
    {"canary-quoted.yaml", HDR META PRED "    canaryTrafficPercent: \"10\"\n" MODEL URI, 7, 27,
     "expected an integer"},
    {"canary-float.yaml", HDR META PRED "    canaryTrafficPercent: 12.5\n" MODEL URI, 7, 27,
     "expected an integer, found 12.5"},
    {"replicas-neg.yaml", HDR META PRED "    minReplicas: -2\n" MODEL URI, 7, 18,
     "spec.predictor.minReplicas: must be between 0 and 1000, found -2"},
    {"replicas-big.yaml", HDR META PRED "    maxReplicas: 5000\n" MODEL URI, 7, 18,
     "spec.predictor.maxReplicas: must be between 0 and 1000, found 5000"},
    {"max-below-min.yaml", HDR META PRED "    minReplicas: 3\n    maxReplicas: 2\n" MODEL URI,
     8, 18, "2 is below minReplicas 3"},
    {"timeout-zero.yaml", HDR META PRED "    timeout: 0\n" MODEL URI, 7, 14,
     "between 1 and 86400"},
    {"scale-metric.yaml", HDR META PRED "    scaleMetric: qps\n" MODEL URI, 7, 18,
     "\"qps\" is not one of concurrency, rps, cpu, memory"},
    {"spec-list.yaml", HDR META "spec:\n  - predictor\n", 6, 3, "spec: expected a map, found a list"},
    {"predictor-scalar.yaml", HDR META "spec:\n  predictor: xgboost\n", 6, 14,
     "spec.predictor: expected a map, found a string"},
    {"no-predictor.yaml", HDR META "spec:\n  transformer: {}\n", 6, 3, "spec.predictor: missing"},
    {"no-model.yaml", HDR META PRED "    minReplicas: 1\n", 7, 5, "spec.predictor: no model"},
    {"two-models.yaml", HDR META PRED MODEL URI "    xgboost:\n      storageUri: a\n", 11, 5,
     "only one of spec.predictor.model and spec.predictor.xgboost"},
    {"uri-list.yaml", HDR META PRED MODEL "      storageUri: [a, b]\n", 10, 19,
     "storageUri: expected a string, found a list"},
    {"uri-empty.yaml", HDR META PRED MODEL "      storageUri: \"\"\n", 10, 19,
     "must not be empty"},
    {"s3-upper.yaml", HDR META PRED MODEL "      storageUri: S3://bucket/m\n", 10, 19,
     "ksv cannot fetch S3:// URIs"},
    {"pvc.yaml", HDR META PRED MODEL "      storageUri: pvc://claim/m\n", 10, 19,
     "ksv cannot fetch pvc:// URIs"},
    {"http-nohost.yaml", HDR META PRED MODEL "      storageUri: http:///m\n", 10, 19,
     "names no host"},
    {"runtime.yaml", HDR META PRED MODEL "      runtime: \"\"\n" URI, 10, 16,
     "expected a runtime name"},
    {"annotation-int.yaml",
     HDR "metadata:\n  name: m\n  annotations:\n    ksv.io/rollback-window: 600\n" PRED MODEL URI,
     6, 29, "expected a string, found an integer (600; quote it"},
    {"window.yaml",
     HDR "metadata:\n  name: m\n  annotations:\n    autoscaling.knative.dev/window: \"0s\"\n" PRED
         MODEL URI,
     6, 37, "expected a duration 1s..1h"},
    {"retention.yaml",
     HDR "metadata:\n  name: m\n  annotations:\n"
         "    autoscaling.knative.dev/scale-to-zero-pod-retention-period: \"soon\"\n" PRED MODEL URI,
     6, 65, "expected a duration 0s..1h"},
    {"queue.yaml",
     HDR "metadata:\n  name: m\n  annotations:\n    ksv.io/cold-start-queue: \"0\"\n" PRED MODEL URI,
     6, 30, "expected a number of requests 1..100000"},
    {"sha256.yaml", HDR "metadata:\n  name: m\n  annotations:\n    ksv.io/sha256: abc\n" PRED MODEL URI,
     6, 20, "expected 64 hex digits"},
    {"fetch.yaml", HDR "metadata:\n  name: m\n  annotations:\n    ksv.io/fetch: Operator\n" PRED MODEL URI,
     6, 19, "expected node or operator, found \"Operator\""},
    {"fetch-ctl.yaml",
     HDR "metadata:\n  name: m\n  annotations:\n    ksv.io/fetch: \"op\\u001b[2J\"\n" PRED MODEL URI,
     6, 19, "expected node or operator"},
    {"nodes.yaml", HDR "metadata:\n  name: m\n  annotations:\n    ksv.io/nodes: \"a,,b\"\n" PRED MODEL URI,
     6, 19, "empty node name"},
    {"selector.yaml",
     HDR "metadata:\n  name: m\n  annotations:\n    ksv.io/node-selector: \"region=eu,,x\"\n" PRED
         MODEL URI,
     6, 27, "selector: an empty term"},
    {"waves.yaml",
     HDR "metadata:\n  name: m\n  annotations:\n    ksv.io/waves: \"25%,10%\"\n" PRED MODEL URI,
     6, 19, "each wave must be larger than the one before"},
    {"waves-huge.yaml",
     HDR "metadata:\n  name: m\n  annotations:\n    ksv.io/waves: \"99999999999999999999\"\n" PRED
         MODEL URI,
     6, 19, "expected wave sizes"},
    {"soak.yaml",
     HDR "metadata:\n  name: m\n  annotations:\n    ksv.io/wave-soak: \"2d\"\n" PRED MODEL URI,
     6, 23, "expected a duration 0s..24h"},
    {"selector-both.yaml",
     HDR "metadata:\n  name: m\n  annotations:\n    ksv.io/nodes: a\n"
         "    ksv.io/node-selector: \"region=eu\"\n" PRED MODEL URI,
     6, 5, "ksv.io/nodes and ksv.io/node-selector both place the model"},
    {"memory.yaml", HDR META PRED MODEL URI "      resources:\n        limits:\n          memory: lots\n",
     13, 19, "\"lots\" is not a memory quantity"},
    {"gpu.yaml", HDR META PRED MODEL URI "      resources:\n        limits:\n          nvidia.com/gpu: half\n",
     13, 27, "expected a whole number of GPUs"},
    {"empty.yaml", "", 1, 1, "no InferenceService or ServingRuntime in this file"},
    {"comments.yaml", "# nothing here\n---\n# still nothing\n", 1, 1, "no InferenceService"},
    {"scalar.yaml", "just a string\n", 1, 1, "expected a map (an InferenceService), found a string"},
    {"doc-list.yaml", "- a\n- b\n", 1, 1, "found a list"},
    {"dup-key.yaml", HDR "metadata:\n  name: m\n  name: n\n" PRED MODEL URI, 5, 3,
     "duplicate key \"name\" (first at line 4)"},
    {"dup-json.json", "{\"kind\": \"InferenceService\",\n \"kind\": \"x\"}", 2, 2,
     "duplicate key \"kind\" (first at line 1)"},
    {"json-syntax.json", "{\"apiVersion\": \"serving.kserve.io/v1beta1\",\n \"kind\": }\n", 2, 10,
     "JSON syntax error"},
    {"json-truncated.json", "{\"apiVersion\": \"serving.kserve.io/v1beta1\",\n \"kind\": \"Inf", 2, 0,
     "JSON syntax error"},
    {"json-scalar.json", "42", 1, 1, "expected a map (an InferenceService), found an integer"},
    {"undefined-alias.yaml", HDR META PRED "    minReplicas: *count\n", 7, 18, "alias *count names no anchor"},
    {"recursive-alias.yaml", "a: &x [1, *x]\n", 1, 11, "refers to a node that contains it"},
    {"tag.yaml", HDR "metadata: !!python/object:os.system\n  name: m\n", 3, 11, "unsupported YAML tag"},
    {"truncated.yaml", HDR "metadata:\n  name: \"trunc", 4, 0, "YAML syntax error"},
    {"bad-utf8.yaml", HDR "metadata:\n  name: \xff\xfe\n", 4, 9, "YAML syntax error: invalid leading UTF-8 octet"},
    {"nul.yaml", HDR "metadata:\n  name: m\0\n", 4, 0, "binary data (a NUL byte)"},
    {"twice.yaml", HDR META PRED MODEL URI "---\n" HDR META PRED MODEL URI, 15, 9,
     "default/m is defined twice in this file (first at line 1)"},
    {"list-items.json", "{\"kind\": \"List\", \"items\": {\"a\": 1}}", 1, 27, "items: expected a list"},
    {"metadata-list.yaml", HDR "metadata: [m]\n", 3, 11, "metadata: expected a map, found a list"},
    {"nonfinite.yaml", HDR META PRED "    timeout: .inf\n", 7, 14, "non-finite number"},
    {"int-overflow.yaml", HDR META PRED "    timeout: 99999999999999999999\n", 7, 14, "out of range"},
};

static size_t broken_text_len(const broken *b)
{
    /* nul.yaml carries a NUL byte inside: its length is that of the literal. */
    if (strcmp(b->name, "nul.yaml") == 0)
        return sizeof(HDR "metadata:\n  name: m\0\n") - 1;
    return strlen(b->text);
}

/* modelFormat lightgbm runs in the engine on ksv-forest (DESIGN.md §13): with no runtime, with
 * ksv-forest or auto, and with KServe's kserve-lgbserver; kserve-mlserver stays MLServer. */
static void test_lightgbm(void)
{
    static const struct {
        const char *runtime_line, *runtime;
        bool external, mapped;
    } cases[] = {
        {"", "ksv-forest", false, false},
        {"      runtime: ksv-forest\n", "ksv-forest", false, false},
        {"      runtime: auto\n", "ksv-forest", false, false},
        {"      runtime: kserve-lgbserver\n", "ksv-forest", false, true},
        {"      runtime: kserve-mlserver\n", "kserve-mlserver", true, false},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char text[1024];
        snprintf(text, sizeof text,
                 "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
                 "metadata:\n  name: value-lgb\nspec:\n  predictor:\n    model:\n"
                 "      modelFormat:\n        name: LightGBM\n%s"
                 "      storageUri: /srv/models/value/model.txt\n",
                 cases[k].runtime_line);
        ksv_manifest_list list;
        ksv_err err = {0};
        int rc = ksv_manifest_parse_buffer(text, strlen(text), "lgb.yaml", "/base", &list, &err);
        const ksv_isvc *s = rc == 0 && list.n == 1 ? &list.items[0] : NULL;
        KT_CHECK(s && str_eq(s->model_format, "lightgbm") && str_eq(s->runtime, cases[k].runtime) &&
                     s->runtime_external == cases[k].external &&
                     s->runtime_mapped == cases[k].mapped,
                 "lightgbm with runtime \"%.30s\" -> %s%s (%s)", cases[k].runtime_line,
                 cases[k].runtime, cases[k].external ? " (ServingRuntime)" : "",
                 s ? s->runtime : err.msg);
        if (rc == 0)
            ksv_manifest_list_free(&list);
    }
}

static void test_broken_table(void)
{
    size_t n = sizeof broken_table / sizeof *broken_table;
    for (size_t k = 0; k < n; k++) {
        const broken *b = &broken_table[k];
        char display[64];
        snprintf(display, sizeof display, "bad/%s", b->name);
        ksv_manifest_list list;
        ksv_err err = {0};
        int rc = ksv_manifest_parse_buffer(b->text, broken_text_len(b), display, "/base", &list,
                                           &err);
        char where[96];
        if (b->line && b->col)
            snprintf(where, sizeof where, "%s:%d:%d: ", display, b->line, b->col);
        else if (b->line)
            snprintf(where, sizeof where, "%s:%d:", display, b->line);
        else
            snprintf(where, sizeof where, "%s:", display);
        bool ok = rc != 0 && list.n == 0 && list.items == NULL && err.status == 400 &&
                  strncmp(err.msg, where, strlen(where)) == 0 && strstr(err.msg, b->reason);
        KT_CHECK(ok, "broken %-24s -> %s", b->name, err.msg);
        if (rc == 0)
            ksv_manifest_list_free(&list);
    }
    KT_CHECK(n >= 20, "broken table has %zu entries", n);

    /* The message format of a file on disk, as `ksv apply` prints it. */
    ksv_manifest_list list;
    ksv_err err = {0};
    const char *path = src_path("tests/manifests/bad-storage-type.yaml");
    char expect[PATH_MAX + 96];
    snprintf(expect, sizeof expect,
             "%s:11:9: spec.predictor.model.storageUri: expected a string, found a list", path);
    KT_CHECK(ksv_manifest_load_file(path, &list, &err) != 0 && strcmp(err.msg, expect) == 0,
             "bad-storage-type.yaml: %s", err.msg);
    KT_CHECK(ksv_manifest_load_file(src_path("tests/manifests/no-such-file.yaml"), &list,
                                    &err) != 0 &&
                 err.status == 404 && strstr(err.msg, "no-such-file.yaml: cannot open"),
             "missing file: %s", err.msg);
}

/* ---- hostile input ------------------------------------------------------------------------ */

static int parse_text(const char *text, size_t len, const char *name, ksv_err *err)
{
    ksv_manifest_list list;
    int rc = ksv_manifest_parse_buffer(text, len, name, "/base", &list, err);
    if (rc == 0)
        ksv_manifest_list_free(&list);
    return rc;
}

static void test_hostile(void)
{
    ksv_err err = {0};
    /* Billion laughs: 9 levels of 10 aliases each would expand to 10^9 strings. */
    ksv_sb bomb;
    ksv_sb_init(&bomb);
    ksv_sb_puts(&bomb, "a0: &a0 [\"lol\"]\n");
    for (int level = 1; level <= 9; level++) {
        ksv_sb_printf(&bomb, "a%d: &a%d [", level, level);
        for (int k = 0; k < 10; k++)
            ksv_sb_printf(&bomb, "%s*a%d", k ? ", " : "", level - 1);
        ksv_sb_puts(&bomb, "]\n");
    }
    int rc = parse_text(bomb.data, bomb.len, "bomb.yaml", &err);
    KT_CHECK(rc != 0 && strstr(err.msg, "bomb.yaml:") && strstr(err.msg, "expands to more than"),
             "alias bomb refused: %s", err.msg);
    ksv_sb_free(&bomb);

    /* A file over the size limit. */
    size_t huge_len = KSV_MANIFEST_MAX_BYTES + 1;
    char *huge = malloc(huge_len);
    if (huge) {
        memset(huge, '#', huge_len);
        for (size_t k = 80; k < huge_len; k += 81)
            huge[k] = '\n';
        rc = parse_text(huge, huge_len, "huge.yaml", &err);
        KT_CHECK(rc != 0 && err.status == 413 && strstr(err.msg, "huge.yaml: "),
                 "huge buffer refused: %s", err.msg);
        FILE *f = fopen("/tmp/ksv-test-manifest-huge.yaml", "wb");
        if (f) {
            fwrite(huge, 1, huge_len, f);
            fclose(f);
            ksv_manifest_list list;
            rc = ksv_manifest_load_file("/tmp/ksv-test-manifest-huge.yaml", &list, &err);
            KT_CHECK(rc != 0 && err.status == 413, "huge file refused: %s", err.msg);
            remove("/tmp/ksv-test-manifest-huge.yaml");
        }
        free(huge);
    }

    /* Deep nesting in both syntaxes. */
    ksv_sb deep;
    ksv_sb_init(&deep);
    for (int k = 0; k < 5000; k++)
        ksv_sb_putc(&deep, '[');
    rc = parse_text(deep.data, deep.len, "deep.yaml", &err);
    KT_CHECK(rc != 0 && strstr(err.msg, "deep.yaml:1:"), "deep YAML nesting refused: %s", err.msg);
    for (int k = 0; k < 5000; k++)
        ksv_sb_putc(&deep, ']');
    rc = parse_text(deep.data, deep.len, "deep.json", &err);
    KT_CHECK(rc != 0 && strstr(err.msg, "deep.json:1:"), "deep JSON nesting refused: %s", err.msg);
    ksv_sb_free(&deep);

    /* A map with very many keys, under the node budget. */
    ksv_sb wide;
    ksv_sb_init(&wide);
    for (int k = 0; k < 20000; k++)
        ksv_sb_printf(&wide, "k%d: %d\n", k, k);
    rc = parse_text(wide.data, wide.len, "wide.yaml", &err);
    KT_CHECK(rc != 0 && strstr(err.msg, "too many keys"), "20000-key map refused: %s", err.msg);
    ksv_sb_free(&wide);

    /* Binary garbage, without NUL bytes so it reaches the parsers. */
    unsigned state = 12345;
    char garbage[4096];
    for (size_t k = 0; k < sizeof garbage; k++) {
        state = state * 1103515245u + 12345u;
        garbage[k] = (char)((state >> 16) % 255 + 1);
    }
    rc = parse_text(garbage, sizeof garbage, "garbage.bin", &err);
    KT_CHECK(rc != 0 && strncmp(err.msg, "garbage.bin:", 12) == 0, "binary garbage refused: %s",
             err.msg);
    garbage[0] = '{';
    rc = parse_text(garbage, sizeof garbage, "garbage.json", &err);
    KT_CHECK(rc != 0 && strncmp(err.msg, "garbage.json:", 13) == 0,
             "binary garbage as JSON refused: %s", err.msg);
}

static char *slurp(const char *rel, size_t *len)
{
    FILE *f = fopen(src_path(rel), "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 16);
    *len = buf ? fread(buf, 1, 1 << 16, f) : 0;
    fclose(f);
    return buf;
}

/* Every prefix of real manifests (a truncated download), and random byte mutations of them:
 * each either reads or is refused with a positioned message; none may crash or leak. */
static void test_truncated_and_mutated(void)
{
    static const char *const files[] = {"tests/manifests/scale.yaml", "tests/manifests/list.json",
                                        "tests/manifests/multi.yaml",
                                        "tests/manifests/anchors.yaml"};
    size_t runs = 0, refused = 0, bad_messages = 0;
    unsigned state = 7;
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        size_t len;
        char *text = slurp(files[f], &len);
        if (!text) {
            KT_CHECK(0, "read %s", files[f]);
            continue;
        }
        const char *display = strstr(files[f], ".json") ? "cut.json" : "cut.yaml";
        for (size_t cut = 0; cut < len; cut++) {
            ksv_err err = {0};
            runs++;
            if (parse_text(text, cut, display, &err) != 0) {
                refused++;
                if (strncmp(err.msg, display, strlen(display)) != 0 || !strchr(err.msg, ':'))
                    bad_messages++;
            }
        }
        char *mutated = malloc(len);
        for (int round = 0; mutated && round < 600; round++) {
            memcpy(mutated, text, len);
            for (int m = 0; m < 3; m++) {
                state = state * 1103515245u + 12345u;
                size_t at = (state >> 8) % len;
                state = state * 1103515245u + 12345u;
                static const char alphabet[] = " :-\n\t{}[],\"'&*!#|>%@`0123456789az\x80\xff";
                mutated[at] = alphabet[(state >> 8) % (sizeof alphabet - 1)];
            }
            ksv_err err = {0};
            runs++;
            if (parse_text(mutated, len, display, &err) != 0) {
                refused++;
                if (strncmp(err.msg, display, strlen(display)) != 0)
                    bad_messages++;
            }
        }
        free(mutated);
        free(text);
    }
    KT_CHECK(bad_messages == 0 && refused > runs / 2,
             "truncated and mutated manifests: %zu runs, %zu refused, all with FILE: messages",
             runs, refused);
}

/* A plain `true` reads as true, `false` as false, and `<<` still marks a merge key: the
 * merge-key mark once overwrote every plain boolean with false (so a Canary's
 * `mirror: true` read as false). */
static void test_plain_booleans(void)
{
    static const char text[] = "a: true\nb: false\nc: True\nd: \"true\"\n";
    mn_docs docs = {0};
    ksv_err err = {0};
    int rc = mn_read_yaml(text, sizeof text - 1, "bools.yaml", &docs, &err);
    const mnode *root = rc == 0 && docs.n == 1 ? docs.docs[0].root : NULL;
    const mnode *a = root ? mn_map_get(root, "a") : NULL;
    const mnode *b = root ? mn_map_get(root, "b") : NULL;
    const mnode *c = root ? mn_map_get(root, "c") : NULL;
    const mnode *d = root ? mn_map_get(root, "d") : NULL;
    KT_CHECK(a && a->type == MN_BOOL && a->b, "plain true reads as true (%s)", err.msg);
    KT_CHECK(b && b->type == MN_BOOL && !b->b, "plain false reads as false");
    KT_CHECK(c && c->type == MN_BOOL && c->b, "plain True reads as true");
    KT_CHECK(d && d->type == MN_STRING && !d->b, "a quoted \"true\" stays a string");
    if (rc == 0)
        mn_docs_free(&docs);
}

/* An anchor on a map key (`&k key: v`): the key's node was freed once its text was copied,
 * and a later `*k` copied freed memory (fuzz_manifest found it: heap-use-after-free under
 * ASan; build-sanitize fails this test on the old code). The alias now reads the key's
 * text, as YAML says; the fuzzer's own input is replayed too. */
static void test_anchored_keys(void)
{
    static const char text[] = "&k team: a\nowner: *k\nlist: [*k, *k]\n";
    mn_docs docs = {0};
    ksv_err err = {0};
    int rc = mn_read_yaml(text, sizeof text - 1, "keys.yaml", &docs, &err);
    const mnode *root = rc == 0 && docs.n == 1 ? docs.docs[0].root : NULL;
    const mnode *owner = root ? mn_map_get(root, "owner") : NULL;
    const mnode *list = root ? mn_map_get(root, "list") : NULL;
    KT_CHECK(owner && owner->type == MN_STRING && strcmp(owner->str, "team") == 0 && list &&
                 list->n == 2 && strcmp(list->items[1]->str, "team") == 0,
             "an alias of an anchored map key reads the key (%s)", rc ? err.msg : "ok");
    if (rc == 0)
        mn_docs_free(&docs);
    /* The fuzzer's input (tests/data/fuzz/, the harness's selector byte taken off):
     * anchored `<<` keys, then aliases of them. */
    size_t len = 0;
    char *found = kt_read_file(src_path("tests/data/fuzz/manifest-anchored-merge-key.yaml"), &len);
    KT_CHECK(found != NULL, "read the fuzzer's input");
    if (!found)
        return;
    mn_docs d2 = {0};
    rc = mn_read_yaml(found, len, "found.yaml", &d2, &err);
    if (rc == 0)
        mn_docs_free(&d2);
    KT_CHECK(rc == 0 || err.status == 400, "the fuzzer's input is read or refused with a 400, "
             "no crash (%s)", rc ? err.msg : "read");
    free(found);
}

/* ksv.io/fetch: where an SSH node's model from a store is fetched. */
static void test_fetch_annotation(void)
{
    static const char text[] =
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
        "metadata:\n  name: m\n  annotations:\n    ksv.io/fetch: operator\n"
        "spec:\n  predictor:\n    model:\n      modelFormat: {name: xgboost}\n"
        "      storageUri: s3://bucket/m/model.json\n";
    ksv_manifest_list list;
    ksv_err err = {0};
    int rc = ksv_manifest_parse_buffer(text, sizeof text - 1, "fetch.yaml", "/base", &list, &err);
    KT_CHECK(rc == 0 && list.n == 1 && list.items[0].fetch_on_operator,
             "ksv.io/fetch: operator is read (%s)", rc ? err.msg : "");
    if (rc == 0)
        ksv_manifest_list_free(&list);
    char node[sizeof text + 8];
    snprintf(node, sizeof node, "%.*snode%s", (int)(strstr(text, "operator") - text), text,
             strstr(text, "operator") + strlen("operator"));
    rc = ksv_manifest_parse_buffer(node, strlen(node), "fetch.yaml", "/base", &list, &err);
    KT_CHECK(rc == 0 && list.n == 1 && !list.items[0].fetch_on_operator,
             "ksv.io/fetch: node is the default behaviour (%s)", rc ? err.msg : "");
    if (rc == 0)
        ksv_manifest_list_free(&list);
}

int main(void)
{
    kt_set_verbose(true);
    test_plain_booleans();
    test_anchored_keys();
    test_fetch_annotation();
    FILE *probe = fopen(src_path("tests/manifests/plain.yaml"), "r");
    if (!probe) {
        printf("FAIL: %s not found: set KSV_SRCDIR to the source tree\n",
               src_path("tests/manifests/plain.yaml"));
        return 1;
    }
    fclose(probe);
    test_plain();
    test_canary();
    test_scale();
    test_multi();
    test_list_json();
    test_shorthand_compat();
    test_anchors();
    test_canonical();
    test_round_trip();
    test_demo_manifests();
    test_lightgbm();
    test_broken_table();
    test_hostile();
    test_truncated_and_mutated();
    return kt_summary("test_manifest");
}
