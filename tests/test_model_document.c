/* test_model_document.c: the one model-document reader (engine/model_document.h). Every
 * broken document below is refused by both runtimes, ksv-xgboost (libxgboost) and ksv-forest
 * (ksv's own trees), with the same status and the same words, in JSON and in UBJSON, before
 * libxgboost reads a byte of it; real models in each format load in both. The corruptions
 * are made from a real XGBoost model (data/models/iris, 60 trees, 3 classes, 4 features),
 * each one something XGBoost 1.7.4 would load and then crash, hang or read out of bounds on,
 * or that ksv-forest's compiler relies on. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/strbuf.h"
#include "engine/model_document.h"
#include "engine/runtime.h"
#include "ktest.h"

typedef struct corruption {
    const char *label;
    const char *const keys[10]; /* from the document's root; the last one is replaced */
    const char *json;           /* the new value; NULL: the member is removed */
    const char *want;           /* words the refusal must contain */
} corruption;

#define MODEL "learner", "gradient_booster", "model"
#define PARAM "learner", "learner_model_param"
/* A three-node tree (a split on feature 0, two leaves) with the given child arrays. */
#define TREE3(left, right)                                                                    \
    "{\"tree_param\":{\"num_nodes\":\"3\",\"size_leaf_vector\":\"1\"},\"left_children\":" left \
    ",\"right_children\":" right ",\"parents\":[2147483647,0,0],\"split_indices\":[0,0,0],"  \
    "\"split_conditions\":[1.5,0.1,0.2],\"default_left\":[0,0,0],\"split_type\":[0,0,0],"  \
    "\"categories\":[],\"categories_nodes\":[],\"categories_segments\":[],"                   \
    "\"categories_sizes\":[],\"base_weights\":[0,0,0],\"loss_changes\":[0,0,0],"             \
    "\"sum_hessian\":[0,0,0],\"id\":0}"

static const corruption CASES[] = {
    {"a child out of range", {MODEL, "trees", "0", "left_children", "0"}, "7",
     "tree 0: child index out of range"},
    {"right not left + 1", {MODEL, "trees", "0", "right_children", "0"}, "1",
     "tree 0: child index out of range"},
    {"a cycle", {MODEL, "trees", "0"}, TREE3("[1,1,-1]", "[2,2,-1]"),
     "tree 0: a node is reached twice (cycle)"},
    {"a child pointing at the root", {MODEL, "trees", "0"}, TREE3("[1,0,-1]", "[2,1,-1]"),
     "tree 0: child index out of range"},
    {"a split feature out of range", {MODEL, "trees", "1", "split_indices", "0"}, "4",
     "tree 1: split feature out of range"},
    {"a parent out of range", {MODEL, "trees", "0", "parents", "1"}, "9",
     "tree 0: parent index out of range"},
    {"an unknown split type", {MODEL, "trees", "0", "split_type", "0"}, "2",
     "tree 0: split_type[0] is not 0 or 1"},
    {"a categorical split without categories", {MODEL, "trees", "0", "split_type", "0"}, "1",
     "tree 0: categorical split without categories"},
    {"categories without their segments", {MODEL, "trees", "0", "categories_nodes"}, "[0]",
     "tree 0: incomplete categories"},
    {"num_nodes larger than the arrays", {MODEL, "trees", "2", "tree_param", "num_nodes"},
     "\"99\"", "num_nodes is 99"},
    {"num_nodes zero", {MODEL, "trees", "2", "tree_param", "num_nodes"}, "\"0\"",
     "tree 2: bad num_nodes"},
    {"a repeated tree id", {MODEL, "trees", "57", "id"}, "14", "tree 57: id is wrong"},
    {"a tree without its id", {MODEL, "trees", "3", "id"}, NULL, "tree 3: id is missing"},
    {"a tree id past the trees", {MODEL, "trees", "59", "id"}, "60", "tree 59: id is wrong"},
    {"an output group out of range", {MODEL, "tree_info", "5"}, "3",
     "tree 5: output group (tree_info) out of range"},
    {"num_trees that disagrees", {MODEL, "gbtree_model_param", "num_trees"}, "\"61\"",
     "trees, tree_info and num_trees disagree"},
    {"iteration_indptr past the trees", {MODEL, "iteration_indptr"}, "[0,30,61]",
     "iteration_indptr does not end at num_trees"},
    {"a tree that is not an object", {MODEL, "trees", "3"}, "[]", "tree 3: bad num_nodes"},
    {"a node array that is not an array", {MODEL, "trees", "0", "left_children"}, "\"x\"",
     "tree 0: left_children is not an array"},
    {"a missing node array", {MODEL, "trees", "0", "right_children"}, NULL,
     "tree 0: right_children is missing"},
    {"a split condition that is not a number", {MODEL, "trees", "0", "split_conditions", "0"},
     "\"a\"", "tree 0: split_conditions[0] is not a number"},
    {"a child index beyond 32 bits", {MODEL, "trees", "0", "left_children", "0"}, "4294967297",
     "tree 0: left_children[0] is not a 32-bit integer"},
    {"a default_left of 7", {MODEL, "trees", "0", "default_left", "0"}, "7",
     "tree 0: default_left[0] is not 0 or 1"},
    {"no features", {PARAM, "num_feature"}, "\"0\"", "num_feature = 0 is out of range"},
    {"a feature count in words", {PARAM, "num_feature"}, "\"four\"",
     "learner_model_param.num_feature is not an integer"},
    {"two million classes", {PARAM, "num_class"}, "\"2000000\"",
     "num_class = 2000000 is out of range"},
    {"no learner parameters", {PARAM}, NULL, "learner.learner_model_param is missing"},
    {"an unknown booster", {"learner", "gradient_booster", "name"}, "\"gbfoo\"",
     "unknown booster \"gbfoo\""},
    {"no learner", {"learner"}, NULL, "learner is missing"},
};

/* ---- a UBJSON writer, so each corruption reaches the UBJSON reader as well --------------- */

static void ubj_be(ksv_sb *out, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        ksv_sb_putc(out, (char)(v >> (8 * i)));
}

static void ubj_string(ksv_sb *out, const char *s, size_t n, bool marker)
{
    if (marker)
        ksv_sb_putc(out, 'S');
    ksv_sb_putc(out, 'L');
    ubj_be(out, n, 8);
    ksv_sb_append(out, s, n);
}

static void ubj_write(ksv_sb *out, json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null: ksv_sb_putc(out, 'Z'); break;
    case json_type_boolean: ksv_sb_putc(out, json_object_get_boolean(v) ? 'T' : 'F'); break;
    case json_type_int:
        ksv_sb_putc(out, 'L');
        ubj_be(out, (uint64_t)json_object_get_int64(v), 8);
        break;
    case json_type_double: {
        double d = json_object_get_double(v);
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        ksv_sb_putc(out, 'D');
        ubj_be(out, bits, 8);
        break;
    }
    case json_type_string:
        ubj_string(out, json_object_get_string(v), (size_t)json_object_get_string_len(v), true);
        break;
    case json_type_array:
        ksv_sb_putc(out, '[');
        for (size_t i = 0; i < json_object_array_length(v); i++)
            ubj_write(out, json_object_array_get_idx(v, i));
        ksv_sb_putc(out, ']');
        break;
    case json_type_object:
        ksv_sb_putc(out, '{');
        json_object_object_foreach(v, key, value) {
            ubj_string(out, key, strlen(key), false);
            ubj_write(out, value);
        }
        ksv_sb_putc(out, '}');
        break;
    }
}

/* ---- loading through both runtimes ------------------------------------------------------- */

/* Loads path with ops; returns 0 (and unloads) or -1 with err set. */
static int load_with(const ksv_runtime_ops *ops, const char *path, ksv_err *err)
{
    ksv_runtime_options opts = {.workers = 1, .predict_threads = 1, .booster_pool = "shared"};
    ksv_model_info info;
    void *handle = NULL;
    ksv_err_clear(err);
    if (ops->load(path, &opts, &handle, &info, err) != 0)
        return -1;
    ops->unload(handle);
    return 0;
}

/* The file at path is refused by both runtimes alike: status 400 (or want_status), the same
 * message, containing want (when non-NULL). */
static void expect_same_refusal(const char *label, const char *path, const char *want)
{
    ksv_err xgb, forest;
    int rc_xgb = load_with(&ksv_runtime_xgboost, path, &xgb);
    int rc_forest = load_with(&ksv_runtime_forest, path, &forest);
    KT_CHECK(rc_xgb == -1 && rc_forest == -1, "%s: refused by both (ksv-xgboost %d, ksv-forest %d)",
             label, rc_xgb, rc_forest);
    if (rc_xgb != -1 || rc_forest != -1)
        return;
    KT_CHECK(xgb.status == forest.status && strcmp(xgb.msg, forest.msg) == 0,
             "%s: the same refusal (ksv-xgboost %d \"%s\", ksv-forest %d \"%s\")", label,
             xgb.status, xgb.msg, forest.status, forest.msg);
    KT_CHECK(xgb.status == 400 && (!want || strstr(xgb.msg, want)),
             "%s: 400 naming \"%s\" (%d: %s)", label, want ? want : "", xgb.status, xgb.msg);
}

static void expect_both_load(const char *label, const char *path)
{
    ksv_err err;
    KT_CHECK(load_with(&ksv_runtime_xgboost, path, &err) == 0, "%s: ksv-xgboost loads it: %s",
             label, err.msg);
    KT_CHECK(load_with(&ksv_runtime_forest, path, &err) == 0, "%s: ksv-forest loads it: %s",
             label, err.msg);
}

/* Replaces (or removes) the value at keys in root; false when the path is not there. */
static bool corrupt(json_object *root, const corruption *c)
{
    size_t depth = 0;
    while (depth < 10 && c->keys[depth])
        depth++;
    json_object *at = root;
    for (size_t k = 0; at && k + 1 < depth; k++) {
        if (json_object_is_type(at, json_type_array))
            at = json_object_array_get_idx(at, (size_t)atoi(c->keys[k]));
        else if (!json_object_object_get_ex(at, c->keys[k], &at))
            at = NULL;
    }
    const char *last = c->keys[depth - 1];
    if (!c->json) {
        if (!json_object_object_get_ex(at, last, NULL))
            return false;
        json_object_object_del(at, last);
        return true;
    }
    json_object *value = json_tokener_parse(c->json);
    bool placed = at && value &&
                  (json_object_is_type(at, json_type_array)
                       ? json_object_array_put_idx(at, (size_t)atoi(last), value) == 0
                       : json_object_object_add(at, last, value) == 0);
    if (!placed)
        json_object_put(value);
    return placed;
}

static void check_corruptions(const char *data_dir, const char *tmp)
{
    char source[1024], json_path[1100], ubj_path[1100], label[160];
    snprintf(source, sizeof source, "%s/models/iris/model.json", data_dir);
    snprintf(json_path, sizeof json_path, "%s/model.json", tmp);
    snprintf(ubj_path, sizeof ubj_path, "%s/model.ubj", tmp);
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) {
        const corruption *c = &CASES[i];
        json_object *root = json_object_from_file(source);
        KT_CHECK(root && corrupt(root, c), "%s: the corruption is placed", c->label);
        if (!root)
            continue;
        ksv_sb ubj;
        ksv_sb_init(&ubj);
        ubj_write(&ubj, root);
        kt_write_file(ubj_path, ubj.data, ubj.len);
        ksv_sb_free(&ubj);
        json_object_to_file(json_path, root);
        json_object_put(root);
        snprintf(label, sizeof label, "%s (JSON)", c->label);
        expect_same_refusal(label, json_path, c->want);
        snprintf(label, sizeof label, "%s (UBJSON)", c->label);
        expect_same_refusal(label, ubj_path, c->want);
    }
    /* The writer itself is sound: the untouched document, written as UBJSON, loads. */
    json_object *root = json_object_from_file(source);
    ksv_sb ubj;
    ksv_sb_init(&ubj);
    ubj_write(&ubj, root);
    kt_write_file(ubj_path, ubj.data, ubj.len);
    ksv_sb_free(&ubj);
    json_object_put(root);
    ksv_model_doc doc;
    ksv_err err;
    KT_CHECK(ksv_model_doc_read_file(ubj_path, &doc, &err) == 0 && doc.num_trees == 60 &&
                 doc.num_feature == 4 && doc.num_groups == 3,
             "the iris model rewritten as UBJSON reads: %zu trees (%s)", doc.num_trees, err.msg);
    ksv_model_doc_free(&doc);
    unlink(json_path);
    unlink(ubj_path);
}

/* Broken bytes rather than broken structure: the same words from both runtimes too. */
static void check_bytes(const char *data_dir, const char *tmp)
{
    char path[1100], source[1024], label[160];
    static const struct {
        const char *label, *name, *bytes, *want;
    } RAW[] = {
        {"an empty file", "empty.json", "", "empty"},
        {"a lone brace", "brace.json", "{", "invalid JSON"},
        {"a JSON array", "array.json", "[1,2]", "not an XGBoost JSON or UBJSON document"},
        {"plain text", "text.ubj", "hello", "not an XGBoost JSON or UBJSON document"},
        {"UBJSON garbage", "garbage.ubj", "{Zq\xff\xff", "ubjson"},
        {"a UBJSON count past the data", "count.ubj", "{L\x7f\xff\xff\xff\xff\xff\xff\xff",
         "ubjson"},
        {"JSON null", "null.json", "{\"learner\":null}", "learner is missing"},
        {"an unknown extension", "model.xml", "{}", "unsupported extension"},
    };
    for (size_t i = 0; i < sizeof RAW / sizeof *RAW; i++) {
        snprintf(path, sizeof path, "%s/%s", tmp, RAW[i].name);
        kt_write_file(path, RAW[i].bytes, strlen(RAW[i].bytes));
        expect_same_refusal(RAW[i].label, path, RAW[i].want);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/absent.json", tmp);
    ksv_err xgb, forest;
    KT_CHECK(load_with(&ksv_runtime_xgboost, path, &xgb) != 0 &&
                 load_with(&ksv_runtime_forest, path, &forest) != 0 && xgb.status == 404 &&
                 strcmp(xgb.msg, forest.msg) == 0 && forest.status == 404,
             "a missing file: 404 from both (%s | %s)", xgb.msg, forest.msg);

    /* Truncations and a tail of garbage on real models, JSON and UBJSON. */
    static const char *const REAL[] = {"fraud/model.json", "iris-ubj/model.ubj"};
    for (size_t r = 0; r < 2; r++) {
        size_t len = 0;
        snprintf(source, sizeof source, "%s/models/%s", data_dir, REAL[r]);
        char *bytes = kt_read_file(source, &len);
        KT_CHECK(bytes != NULL, "read %s", source);
        if (!bytes)
            continue;
        const char *ext = strrchr(REAL[r], '.');
        snprintf(path, sizeof path, "%s/real%s", tmp, ext);
        kt_write_file(path, bytes, len);
        expect_both_load(REAL[r], path);
        static const double CUTS[] = {0.001, 0.3, 0.77, 0.999};
        for (size_t k = 0; k < sizeof CUTS / sizeof *CUTS; k++) {
            size_t cut = (size_t)((double)len * CUTS[k]);
            kt_write_file(path, bytes, cut);
            snprintf(label, sizeof label, "%s cut to %zu of %zu bytes", REAL[r], cut, len);
            expect_same_refusal(label, path, NULL);
        }
        char *longer = malloc(len + 3);
        memcpy(longer, bytes, len);
        memcpy(longer + len, "{}x", 3);
        kt_write_file(path, longer, len + 3);
        snprintf(label, sizeof label, "%s with bytes after the document", REAL[r]);
        expect_same_refusal(label, path, r == 0 ? "trailing data" : "trailing bytes");
        free(longer);
        free(bytes);
        unlink(path);
    }

    /* A byte-order mark and white space before a JSON model: both take it. */
    size_t len = 0;
    snprintf(source, sizeof source, "%s/models/iris/model.json", data_dir);
    char *bytes = kt_read_file(source, &len);
    char *padded = bytes ? malloc(len + 6) : NULL;
    KT_CHECK(padded != NULL, "read %s", source);
    if (padded) {
        memcpy(padded, "\xef\xbb\xbf \n\t", 6);
        memcpy(padded + 6, bytes, len);
        snprintf(path, sizeof path, "%s/bom.json", tmp);
        kt_write_file(path, padded, len + 6);
        expect_both_load("iris with a byte-order mark", path);
        unlink(path);
    }
    free(padded);
    free(bytes);
}

int main(void)
{
    char data_dir[400], tmp[] = "/tmp/ksv-test-doc-XXXXXX";
    kt_data_dir(data_dir, sizeof data_dir);
    setvbuf(stdout, NULL, _IOLBF, 0);
    kt_set_verbose(true);
    if (!mkdtemp(tmp)) {
        KT_CHECK(false, "mkdtemp: %s", strerror(errno));
        return kt_summary("test_model_document");
    }
    check_corruptions(data_dir, tmp);
    check_bytes(data_dir, tmp);
    rmdir(tmp);
    return kt_summary("test_model_document");
}
