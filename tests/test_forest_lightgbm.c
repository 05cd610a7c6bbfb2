/* test_forest_lightgbm.c: ksv-forest's LightGBM reader (src/engine/forest/forest_lightgbm.c).
 *
 * Good models: the small LightGBM models in tests/data/lightgbm/ (a binary model with
 * categorical bitset splits, a 3-class multiclass one, a zero_as_missing regression; written
 * by train_small.py there) answer LightGBM's own Booster.predict, stored in expected.json
 * with the float32 probe rows it was given (NaN, zeros, values within 1e-35 of 0, negative
 * and out-of-range categories), to LightGBM's double rounded to float: bit for bit; so does
 * forest_lgb_row, the CUDA kernel's per-row code, run here on the host. Also through the
 * runtime interface (the engine's path) from a file named .bst and .txt.
 *
 * Hostile models: every kind of broken text (counts that lie, children out of range or in a
 * cycle, a node reached twice, bitsets out of range, huge numbers, NaN, missing keys, a
 * linear tree, a truncated file, NUL bytes, every prefix of a real model) is refused with a
 * message naming the problem, never a crash (run under ASan+UBSan too). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "engine/forest/forest_lightgbm.h"
#include "engine/forest/forest_lightgbm_traverse.h"
#include "engine/forest/forest_load.h"
#include "engine/forest/forest_predict.h"
#include "engine/runtime.h"

#include "ktest.h"

#ifndef KSV_SRCDIR
#define KSV_SRCDIR "."
#endif

static char data_dir[4096];

static char *read_model(const char *name, size_t *len)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", data_dir, name);
    return kt_read_file(path, len);
}

/* Predicts expected.json's rows with the model and compares with LightGBM's answers. */
static void check_against_lightgbm(json_object *expected, const char *name)
{
    size_t len;
    char file[128];
    snprintf(file, sizeof file, "%s.txt", name);
    char *text = read_model(file, &len);
    if (!text) {
        KT_FAIL("%s: cannot read", file);
        return;
    }
    forest *f = NULL;
    ksv_err err = {0};
    int rc = forest_load_buffer(text, len, FOREST_FORMAT_SNIFF, FOREST_PREFER_AUTO, &f, &err);
    free(text);
    KT_CHECK(rc == 0 && f && f->layout == FOREST_LAYOUT_LIGHTGBM, "%s loads: %s", name,
             rc ? err.msg : "LIGHTGBM layout");
    if (rc)
        return;
    json_object *rows = json_object_object_get(expected, "rows");
    json_object *want = json_object_object_get(expected, name);
    size_t n = json_object_array_length(rows), cols = f->num_features, k = f->num_outputs;
    float *x = malloc(n * cols * sizeof *x), *out = malloc(n * k * sizeof *out);
    float *scratch = malloc(forest_scratch_floats(f) * sizeof *scratch);
    for (size_t r = 0; r < n; r++) {
        json_object *row = json_object_array_get_idx(rows, r);
        for (size_t c = 0; c < cols; c++) {
            json_object *v = json_object_array_get_idx(row, c);
            x[r * cols + c] = v ? (float)json_object_get_double(v) : NAN;
        }
    }
    /* All rows at once, one at a time (the engine's 1-row path), and each row through
     * forest_lgb_row: the code forest_cuda.cu's kernel runs per thread, here on the host. */
    static const char *const passes[] = {"one batch", "row by row", "the CUDA kernel's row code"};
    forest_lgb_view view = forest_lgb_view_of(f);
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 0)
            forest_predict(f, x, n, out, scratch);
        else if (pass == 1)
            for (size_t r = 0; r < n; r++)
                forest_predict(f, x + r * cols, 1, out + r * k, scratch);
        else
            for (size_t r = 0; r < n; r++)
                forest_lgb_row(&view, x + r * cols, (double *)(void *)scratch, out + r * k);
        size_t same = 0, first_diff = n * k;
        for (size_t r = 0; r < n; r++) {
            json_object *w = json_object_array_get_idx(want, r);
            for (size_t j = 0; j < k; j++) {
                double lgb = json_object_get_double(
                    json_object_is_type(w, json_type_array) ? json_object_array_get_idx(w, j) : w);
                if (out[r * k + j] == (float)lgb)
                    same++;
                else if (first_diff == n * k)
                    first_diff = r * k + j;
            }
        }
        KT_CHECK(same == n * k, "%s (%s): %zu of %zu answers are LightGBM's, bit for bit "
                 "(first miss at %zu)", name, passes[pass], same, n * k,
                 first_diff);
    }
    free(x);
    free(out);
    free(scratch);
    forest_free(f);
}

/* The engine's path: the runtime interface from a file, named as KServe (.bst) and LightGBM
 * (.txt) name it; ksv-xgboost refuses it saying what it is. */
static void check_runtime_files(void)
{
    size_t len;
    char *text = read_model("binary-cat.txt", &len);
    char tmp[] = "/tmp/ksv-lgb-XXXXXX";
    if (!text || !mkdtemp(tmp)) {
        KT_FAIL("fixture: %s", text ? "mkdtemp" : "binary-cat.txt");
        free(text);
        return;
    }
    const char *names[] = {"model.bst", "model.txt"};
    for (size_t i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", tmp, names[i]);
        kt_write_file(path, text, len);
        ksv_runtime_options opts = {.workers = 2, .gpu = -1};
        void *h = NULL;
        ksv_model_info info;
        ksv_err err = {0};
        int rc = ksv_runtime_forest.load(path, &opts, &h, &info, &err);
        KT_CHECK(rc == 0 && info.num_features == 4 && info.num_outputs == 1 &&
                     strcmp(info.objective, "lightgbm binary") == 0,
                 "ksv-forest loads %s: %s", names[i], rc ? err.msg : info.objective);
        if (rc == 0) {
            float row[4] = {NAN, NAN, NAN, NAN}, out[2] = {0, 0};
            KT_CHECK(ksv_runtime_forest.predict(h, 1, row, 1, 4, out, &err) == 0 &&
                         out[0] > 0 && out[0] < 1,
                     "%s predicts a probability for a row of NaN (%g)", names[i], (double)out[0]);
            ksv_runtime_forest.unload(h);
        }
        rc = ksv_runtime_auto.load(path, &opts, &h, &info, &err);
        KT_CHECK(rc == 0 && strcmp(info.runtime, "ksv-forest") == 0 &&
                     strstr(info.runtime_note, "LightGBM"),
                 "runtime auto serves %s on ksv-forest: %s", names[i],
                 rc ? err.msg : info.runtime_note);
        if (rc == 0)
            ksv_runtime_auto.unload(h);
        rc = ksv_runtime_xgboost.load(path, &opts, &h, &info, &err);
        KT_CHECK(rc != 0 && err.status == 400 && strstr(err.msg, "LightGBM"),
                 "ksv-xgboost refuses %s naming LightGBM: %s", names[i], err.msg);
        unlink(path);
    }
    /* A .txt file that is not LightGBM, and a truncated one, through auto. */
    char path[128];
    snprintf(path, sizeof path, "%s/notes.txt", tmp);
    kt_write_file(path, "hello\n", 6);
    ksv_runtime_options opts = {.workers = 1, .gpu = -1};
    void *h = NULL;
    ksv_model_info info;
    ksv_err err = {0};
    KT_CHECK(ksv_runtime_auto.load(path, &opts, &h, &info, &err) != 0 && err.status == 400 &&
                 strstr(err.msg, "LightGBM"),
             "a .txt that is not a LightGBM model is refused: %s", err.msg);
    unlink(path);
    snprintf(path, sizeof path, "%s/cut.txt", tmp);
    kt_write_file(path, text, len / 3);
    KT_CHECK(ksv_runtime_auto.load(path, &opts, &h, &info, &err) != 0 && err.status == 400 &&
                 strstr(err.msg, "LightGBM model:"),
             "a truncated LightGBM model is refused by auto with ksv-forest's reason: %s",
             err.msg);
    unlink(path);
    rmdir(tmp);
    free(text);
}

/* ---- hostile text ------------------------------------------------------------------------ */

#define HEAD "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n" \
             "max_feature_idx=1\nobjective=regression\n\n"
#define TREE_OK "Tree=0\nnum_leaves=3\nnum_cat=0\nsplit_feature=0 1\nthreshold=0.5 1.5\n" \
                "decision_type=2 8\nleft_child=-1 -2\nright_child=1 -3\nleaf_value=1 2 3\n" \
                "is_linear=0\nshrinkage=1\n\n"
#define END "end of trees\n"

typedef struct hostile {
    const char *label, *text, *want;
} hostile;

static const hostile HOSTILE[] = {
    {"not LightGBM at all", "hello\n", "first line"},
    {"no trees", HEAD END, "no trees"},
    {"no end of trees", HEAD TREE_OK, "end of trees"},
    {"no max_feature_idx", "tree\nobjective=regression\n" TREE_OK END, "max_feature_idx"},
    {"huge max_feature_idx", "tree\nmax_feature_idx=99999999999\n" TREE_OK END,
     "max_feature_idx"},
    {"negative max_feature_idx", "tree\nmax_feature_idx=-1\n" TREE_OK END, "max_feature_idx"},
    {"unknown objective", "tree\nmax_feature_idx=1\nobjective=lambdamart\n" TREE_OK END,
     "objective \"lambdamart\""},
    {"multiclass num_class disagrees",
     "tree\nmax_feature_idx=1\nnum_tree_per_iteration=1\nobjective=multiclass num_class:3\n"
     TREE_OK END, "num_class:3"},
    {"trees not whole iterations",
     "tree\nmax_feature_idx=1\nnum_class=2\nnum_tree_per_iteration=2\n"
     "objective=multiclass num_class:2\n" TREE_OK END, "whole iterations"},
    {"sigmoid not a number", "tree\nmax_feature_idx=1\nobjective=binary sigmoid:x\n" TREE_OK END,
     "sigmoid:x"},
    {"Tree index out of order", HEAD "Tree=3\nnum_leaves=1\nleaf_value=1\n\n" END,
     "Tree=3 where tree 0"},
    {"num_leaves missing", HEAD "Tree=0\nleaf_value=1\n\n" END, "num_leaves is missing"},
    {"num_leaves 0", HEAD "Tree=0\nnum_leaves=0\nleaf_value=\n\n" END, "num_leaves"},
    {"num_leaves huge", HEAD "Tree=0\nnum_leaves=2000000000\nleaf_value=1\n\n" END,
     "num_leaves"},
    {"num_leaves lies", HEAD "Tree=0\nnum_leaves=3\nsplit_feature=0\nthreshold=1\n"
     "decision_type=0\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n\n" END,
     "leaf_value has 2 values, expected 3"},
    {"an array too short", HEAD "Tree=0\nnum_leaves=3\nsplit_feature=0\nthreshold=1 2\n"
     "decision_type=0 0\nleft_child=-1 -2\nright_child=1 -3\nleaf_value=1 2 3\n\n" END,
     "split_feature has 1 values, expected 2"},
    {"feature out of range", HEAD "Tree=0\nnum_leaves=2\nsplit_feature=2\nthreshold=1\n"
     "decision_type=0\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n\n" END,
     "split_feature value \"2\""},
    {"child past the nodes", HEAD "Tree=0\nnum_leaves=2\nsplit_feature=0\nthreshold=1\n"
     "decision_type=0\nleft_child=5\nright_child=-2\nleaf_value=1 2\n\n" END,
     "left_child value \"5\""},
    {"leaf past the leaves", HEAD "Tree=0\nnum_leaves=2\nsplit_feature=0\nthreshold=1\n"
     "decision_type=0\nleft_child=-1\nright_child=-3\nleaf_value=1 2\n\n" END,
     "right_child value \"-3\""},
    {"a cycle back to the root", HEAD "Tree=0\nnum_leaves=3\nsplit_feature=0 1\n"
     "threshold=1 2\ndecision_type=0 0\nleft_child=-1 0\nright_child=1 -2\nleaf_value=1 2 3\n\n"
     END, "node 0 is reached twice"},
    {"a node that is its own child", HEAD "Tree=0\nnum_leaves=3\nsplit_feature=0 1\n"
     "threshold=1 2\ndecision_type=0 0\nleft_child=-1 1\nright_child=1 -2\nleaf_value=1 2 3\n\n"
     END, "node 1 is reached twice"},
    {"a leaf reached twice", HEAD "Tree=0\nnum_leaves=3\nsplit_feature=0 1\n"
     "threshold=1 2\ndecision_type=0 0\nleft_child=-1 -1\nright_child=1 -2\nleaf_value=1 2 3\n\n"
     END, "leaf 0 is reached twice"},
    {"unreachable cycle", HEAD "Tree=0\nnum_leaves=4\nsplit_feature=0 1 1\n"
     "threshold=1 2 3\ndecision_type=0 0 0\nleft_child=-1 2 1\nright_child=-2 -3 -4\n"
     "leaf_value=1 2 3 4\n\n" END, "not reachable from the root"},
    {"NaN threshold", HEAD "Tree=0\nnum_leaves=2\nsplit_feature=0\nthreshold=nan\n"
     "decision_type=0\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n\n" END,
     "threshold value \"nan\""},
    {"infinite leaf", HEAD "Tree=0\nnum_leaves=2\nsplit_feature=0\nthreshold=1\n"
     "decision_type=0\nleft_child=-1\nright_child=-2\nleaf_value=1 inf\n\n" END,
     "leaf_value value \"inf\" is not a finite number"},
    {"a number too long", HEAD "Tree=0\nnum_leaves=1\nleaf_value="
     "1111111111111111111111111111111111111111111111111111111111111111111111111111111111111\n\n"
     END, "not a finite number"},
    {"trailing junk in a number", HEAD "Tree=0\nnum_leaves=1\nleaf_value=1x\n\n" END,
     "leaf_value value \"1x\""},
    {"missing type 3", HEAD "Tree=0\nnum_leaves=2\nsplit_feature=0\nthreshold=1\n"
     "decision_type=12\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n\n" END,
     "missing type 3"},
    {"decision_type out of range", HEAD "Tree=0\nnum_leaves=2\nsplit_feature=0\nthreshold=1\n"
     "decision_type=64\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n\n" END,
     "decision_type value \"64\""},
    {"categorical without bitsets", HEAD "Tree=0\nnum_leaves=2\nnum_cat=0\nsplit_feature=0\n"
     "threshold=0\ndecision_type=1\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n\n" END,
     "names bitset 0 of 0"},
    {"bitset index past num_cat", HEAD "Tree=0\nnum_leaves=2\nnum_cat=1\nsplit_feature=0\n"
     "threshold=1\ndecision_type=1\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n"
     "cat_boundaries=0 1\ncat_threshold=6\n\n" END, "names bitset 1 of 1"},
    {"bitset index not whole", HEAD "Tree=0\nnum_leaves=2\nnum_cat=1\nsplit_feature=0\n"
     "threshold=0.5\ndecision_type=1\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n"
     "cat_boundaries=0 1\ncat_threshold=6\n\n" END, "names bitset 0.5"},
    {"cat_boundaries past cat_threshold", HEAD "Tree=0\nnum_leaves=2\nnum_cat=1\n"
     "split_feature=0\nthreshold=0\ndecision_type=1\nleft_child=-1\nright_child=-2\n"
     "leaf_value=1 2\ncat_boundaries=0 5\ncat_threshold=6\n\n" END, "cat_boundaries value \"5\""},
    {"cat_boundaries falling", HEAD "Tree=0\nnum_leaves=2\nnum_cat=2\nsplit_feature=0\n"
     "threshold=0\ndecision_type=1\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n"
     "cat_boundaries=0 2 1\ncat_threshold=6 7\n\n" END, "cat_boundaries value \"1\""},
    {"cat_boundaries not from 0", HEAD "Tree=0\nnum_leaves=2\nnum_cat=1\nsplit_feature=0\n"
     "threshold=0\ndecision_type=1\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n"
     "cat_boundaries=1 1\ncat_threshold=6\n\n" END, "must start at 0"},
    {"cat_threshold missing", HEAD "Tree=0\nnum_leaves=2\nnum_cat=1\nsplit_feature=0\n"
     "threshold=0\ndecision_type=1\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n"
     "cat_boundaries=0 1\n\n" END, "cat_threshold is missing"},
    {"bitset word too big", HEAD "Tree=0\nnum_leaves=2\nnum_cat=1\nsplit_feature=0\n"
     "threshold=0\ndecision_type=1\nleft_child=-1\nright_child=-2\nleaf_value=1 2\n"
     "cat_boundaries=0 1\ncat_threshold=4294967296\n\n" END, "cat_threshold value"},
    {"a linear tree", HEAD "Tree=0\nnum_leaves=1\nleaf_value=1\nis_linear=1\n\n" END,
     "linear tree"},
    {"a key given twice", HEAD "Tree=0\nnum_leaves=1\nleaf_value=1\nleaf_value=2\n\n" END,
     "leaf_value given twice"},
    {"a line outside key=value", HEAD "Tree=0\nnum_leaves=1\nleaf_value=1\ngarbage\n\n" END,
     "not key=value"},
};

static void check_hostile(void)
{
    for (size_t i = 0; i < sizeof HOSTILE / sizeof *HOSTILE; i++) {
        forest *f = NULL;
        ksv_err err = {0};
        int rc = forest_load_buffer(HOSTILE[i].text, strlen(HOSTILE[i].text),
                                    FOREST_FORMAT_LIGHTGBM, FOREST_PREFER_AUTO, &f, &err);
        KT_CHECK(rc != 0 && f == NULL && err.status == 400 && strstr(err.msg, HOSTILE[i].want),
                 "%s: refused (%s)", HOSTILE[i].label, err.msg);
        forest_free(f);
    }
    /* Small good models, each with the answers its rules give. The first is the control for
     * the table above: x0 <= 0.5 -> leaf 0 (1); else x1 <= 1.5 -> leaf 1 (2), else leaf 2
     * (3); NaN in x0 (missing type None) is 0: leaf 0; NaN in x1 (type NaN, default right):
     * leaf 2. Trees of one leaf only have no nodes at all, and an empty bitset sends every
     * category right (fuzz_model_lightgbm found an offset on a NULL array in each);
     * average_output divides by the iterations. */
    static const struct {
        const char *label, *text;
        uint32_t rows;
        float x[10], want[5];
    } GOOD[] = {
        {"the table's good model", HEAD TREE_OK END, 5,
         {0.5f, 0, 0.50000006f, 1.5f, 0.6f, 1.6f, NAN, 9, 1, NAN}, {1, 2, 3, 1, 3}},
        {"single-leaf trees, average_output",
         "tree\nmax_feature_idx=0\nobjective=regression\naverage_output\n\nTree=0\n"
         "num_leaves=1\nleaf_value=1.5\n\nTree=1\nnum_leaves=1\nleaf_value=2.5\n\n" END,
         1, {NAN}, {2}},
        {"an empty bitset",
         "tree\nmax_feature_idx=0\nobjective=regression\n\nTree=0\nnum_leaves=2\nnum_cat=1\n"
         "split_feature=0\nthreshold=0\ndecision_type=1\nleft_child=-1\nright_child=-2\n"
         "leaf_value=1 2\ncat_boundaries=0 0\ncat_threshold=\n\n" END,
         3, {0, 5, NAN}, {2, 2, 2}},
    };
    forest *f = NULL;
    ksv_err err = {0};
    int rc;
    for (size_t i = 0; i < sizeof GOOD / sizeof *GOOD; i++) {
        rc = forest_load_buffer(GOOD[i].text, strlen(GOOD[i].text), FOREST_FORMAT_SNIFF,
                                FOREST_PREFER_AUTO, &f, &err);
        KT_CHECK(rc == 0, "%s loads: %s", GOOD[i].label, rc ? err.msg : "yes");
        if (rc)
            continue;
        float out[5], *scratch = malloc(forest_scratch_floats(f) * sizeof *scratch);
        forest_predict(f, GOOD[i].x, GOOD[i].rows, out, scratch);
        free(scratch);
        bool same = memcmp(out, GOOD[i].want, GOOD[i].rows * sizeof *out) == 0;
        KT_CHECK(same, "%s answers as LightGBM's rules say (first: %g, want %g)", GOOD[i].label,
                 (double)out[0], (double)GOOD[i].want[0]);
        forest_free(f);
    }
    /* A NUL byte, a huge file of one line, every prefix of a real model. */
    char nul[] = HEAD TREE_OK END;
    nul[20] = 0;
    KT_CHECK(forest_load_buffer(nul, sizeof nul - 1, FOREST_FORMAT_LIGHTGBM, FOREST_PREFER_AUTO,
                                &f, &err) != 0 && strstr(err.msg, "NUL"),
             "a NUL byte is refused: %s", err.msg);
    size_t len;
    char *text = read_model("binary-cat.txt", &len);
    if (!text) {
        KT_FAIL("binary-cat.txt: cannot read");
        return;
    }
    size_t refused = 0, loaded = 0;
    for (size_t cut = 0; cut < len; cut++) {
        rc = forest_load_buffer(text, cut, FOREST_FORMAT_LIGHTGBM, FOREST_PREFER_AUTO, &f, &err);
        if (rc == 0) {
            loaded++;
            forest_free(f);
        } else if (err.status == 400) {
            refused++;
        }
    }
    const char *end = strstr(text, "end of trees");
    size_t complete = end ? len - (size_t)(end - text) - strlen("end of trees") : 0;
    KT_CHECK(refused + loaded == len && loaded == complete,
             "every prefix of binary-cat.txt is refused with a 400, but those holding \"end of "
             "trees\" (%zu refused, %zu loaded, %zu complete)", refused, loaded, complete);
    /* Flipped bytes: anything may happen but a crash (ASan/UBSan watch the walk). */
    uint64_t s = 0x243f6a8885a308d3ull;
    for (int round = 0; round < 3000; round++) {
        char *copy = malloc(len);
        memcpy(copy, text, len);
        for (int k = 0; k < 3; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            copy[(s >> 33) % len] = "0123456789-~ \n=e."[(s >> 20) % 17];
        }
        if (forest_load_buffer(copy, len, FOREST_FORMAT_LIGHTGBM, FOREST_PREFER_AUTO, &f,
                               &err) == 0) {
            float *row = malloc(f->num_features * sizeof *row);
            float *out = malloc(f->num_outputs * sizeof *out);
            float *scratch = malloc(forest_scratch_floats(f) * sizeof *scratch);
            for (uint32_t c = 0; c < f->num_features; c++)
                row[c] = (float[]){1, NAN, 3, -1, 0, 1e-36f}[c % 6];
            forest_predict(f, row, 1, out, scratch);
            free(row);
            free(out);
            free(scratch);
            forest_free(f);
        }
        free(copy);
    }
    kt_count_check();
    free(text);
}

int main(void)
{
    kt_set_verbose(true);
    const char *src = getenv("KSV_SRCDIR");
    snprintf(data_dir, sizeof data_dir, "%s/tests/data/lightgbm", src ? src : KSV_SRCDIR);
    size_t len;
    char *text = read_model("expected.json", &len);
    if (!text) {
        printf("FAIL: %s/expected.json not found: set KSV_SRCDIR\n", data_dir);
        return 1;
    }
    json_object *expected = json_tokener_parse(text);
    free(text);
    KT_CHECK(expected != NULL, "expected.json parses");
    if (expected) {
        check_against_lightgbm(expected, "binary-cat");
        check_against_lightgbm(expected, "multiclass");
        check_against_lightgbm(expected, "regression-zero");
        json_object_put(expected);
    }
    check_runtime_files();
    check_hostile();
    return kt_summary("test_forest_lightgbm");
}
