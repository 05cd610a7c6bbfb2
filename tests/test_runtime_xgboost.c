/* test_runtime_xgboost.c: the ksv-xgboost runtime against XGBoost's own predictions.
 *
 * For every model folder in data/models and KServe's three iris files, loads the model in
 * both booster pools, predicts the rows of its sample request and compares with
 * data/expected (written by XGBoost's Python Booster.predict, see data/README.md). Also
 * checks model info, error handling for missing and broken files, concurrent predictions
 * against single-threaded ones, and the runtime registry.
 * Data: $KSV_DATA_DIR, else KSV_SRCDIR/data; compat files: $KSV_COMPAT_DIR, else
 * DATA/compat/kserve-xgboost-iris. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <xgboost/c_api.h>

#include "engine/runtime.h"

#include "ktest.h"

#ifndef KSV_SRCDIR
#define KSV_SRCDIR "."
#endif

static const double TOLERANCE = 1e-6;
static const char *const POOLS[] = {"per-worker", "shared"};

/* Rows of floats plus their shape, read from a request or expected file. */
typedef struct matrix {
    float *data;
    size_t count;   /* number of values in data */
    size_t rows;
    size_t cols;    /* 1 for a one-dimensional shape */
} matrix;

static void matrix_free(matrix *m)
{
    free(m->data);
    memset(m, 0, sizeof *m);
}

/* Appends the numbers of a (possibly nested) JSON array, null as NaN. */
static bool flatten(json_object *value, float **data, size_t *count, size_t *cap)
{
    if (json_object_is_type(value, json_type_array)) {
        size_t n = json_object_array_length(value);
        for (size_t i = 0; i < n; i++) {
            if (!flatten(json_object_array_get_idx(value, i), data, count, cap))
                return false;
        }
        return true;
    }
    float v;
    if (value == NULL)
        v = NAN;
    else if (json_object_is_type(value, json_type_double) ||
             json_object_is_type(value, json_type_int))
        v = (float)json_object_get_double(value);
    else
        return false;
    if (*count == *cap) {
        size_t next = *cap ? *cap * 2 : 64;
        float *grown = realloc(*data, next * sizeof(float));
        if (grown == NULL)
            return false;
        *data = grown;
        *cap = next;
    }
    (*data)[(*count)++] = v;
    return true;
}

/* Reads {"shape": [...], "data": [...]} from `obj` into m. */
static bool read_tensor(json_object *obj, matrix *m)
{
    json_object *shape, *data;
    size_t cap = 0;

    memset(m, 0, sizeof *m);
    if (!json_object_object_get_ex(obj, "shape", &shape) ||
        !json_object_object_get_ex(obj, "data", &data) ||
        !json_object_is_type(shape, json_type_array))
        return false;
    size_t dims = json_object_array_length(shape);
    if (dims < 1 || dims > 2)
        return false;
    m->rows = (size_t)json_object_get_int64(json_object_array_get_idx(shape, 0));
    m->cols = dims == 2 ? (size_t)json_object_get_int64(json_object_array_get_idx(shape, 1)) : 1;
    if (!flatten(data, &m->data, &m->count, &cap) || m->count != m->rows * m->cols) {
        matrix_free(m);
        return false;
    }
    return true;
}

static bool read_request(const char *path, matrix *m)
{
    json_object *root = json_object_from_file(path), *inputs;
    bool ok = root != NULL && json_object_object_get_ex(root, "inputs", &inputs) &&
              json_object_is_type(inputs, json_type_array) &&
              json_object_array_length(inputs) >= 1 &&
              read_tensor(json_object_array_get_idx(inputs, 0), m);
    json_object_put(root);
    return ok;
}

static bool read_expected(const char *path, matrix *m)
{
    json_object *root = json_object_from_file(path);
    bool ok = root != NULL && read_tensor(root, m);
    json_object_put(root);
    return ok;
}

/* The objective written in a JSON model file, read with json-c (an oracle independent of
 * the runtime, which asks libxgboost). "" when not a JSON file. */
static void objective_from_json_file(const char *path, char *out, size_t size)
{
    json_object *root = json_object_from_file(path), *node;
    out[0] = '\0';
    if (root != NULL && json_object_object_get_ex(root, "learner", &node) &&
        json_object_object_get_ex(node, "objective", &node) &&
        json_object_object_get_ex(node, "name", &node))
        snprintf(out, size, "%s", json_object_get_string(node));
    json_object_put(root);
}

/* What data/make_demo_models.py trains each model folder with. */
static const struct {
    const char *name;
    const char *objective;
} KNOWN_OBJECTIVES[] = {
    {"fraud", "binary:logistic"},     {"iris", "multi:softprob"},
    {"iris-ubj", "multi:softprob"},   {"iris-bst", "multi:softprob"},
    {"churn-v1", "binary:logistic"},  {"churn-v2", "binary:logistic"},
    {"softmax", "multi:softmax"},     {"regression", "reg:squarederror"},
    {"ranking", "rank:pairwise"},     {"linear", "reg:squarederror"},
    {"compat-iris", "multi:softmax"},
};

static const char *known_objective(const char *name)
{
    for (size_t i = 0; i < sizeof KNOWN_OBJECTIVES / sizeof KNOWN_OBJECTIVES[0]; i++) {
        if (strcmp(KNOWN_OBJECTIVES[i].name, name) == 0)
            return KNOWN_OBJECTIVES[i].objective;
    }
    return NULL;
}

static void xgboost_version(char *out, size_t size)
{
    int major, minor, patch;
    XGBoostVersion(&major, &minor, &patch);
    snprintf(out, size, "%d.%d.%d", major, minor, patch);
}

/* Loads `model_path`, predicts `request` and compares with `expected`, in both pools.
 * `label` names the case; `objective_name` is the case name for KNOWN_OBJECTIVES. */
static void check_model(const char *label, const char *objective_name, const char *model_path,
                        const matrix *request, const matrix *expected)
{
    char version[32], file_objective[64];
    const char *table_objective = known_objective(objective_name);

    xgboost_version(version, sizeof version);
    objective_from_json_file(model_path, file_objective, sizeof file_objective);
    for (size_t p = 0; p < 2; p++) {
        ksv_runtime_options opts = {.workers = 2, .predict_threads = 1, .booster_pool = POOLS[p]};
        ksv_model_info info;
        ksv_err err = {0};
        void *model = NULL;

        if (ksv_runtime_xgboost.load(model_path, &opts, &model, &info, &err) != 0) {
            KT_CHECK(false, "%s [%s]: load: %s", label, POOLS[p], err.msg);
            continue;
        }
        KT_CHECK(info.num_features == request->cols, "%s [%s]: num_features %zu == %zu", label,
                 POOLS[p], info.num_features, request->cols);
        KT_CHECK(info.num_outputs == expected->cols, "%s [%s]: num_outputs %zu == %zu", label,
                 POOLS[p], info.num_outputs, expected->cols);
        KT_CHECK(strcmp(info.version, version) == 0, "%s [%s]: version %s", label, POOLS[p],
                 info.version);
        if (table_objective != NULL)
            KT_CHECK(strcmp(info.objective, table_objective) == 0, "%s [%s]: objective %s == %s",
                     label, POOLS[p], info.objective, table_objective);
        if (file_objective[0] != '\0')
            KT_CHECK(strcmp(info.objective, file_objective) == 0,
                     "%s [%s]: objective %s == model file's %s", label, POOLS[p], info.objective,
                     file_objective);
        KT_CHECK(table_objective != NULL || file_objective[0] != '\0',
                 "%s: has an objective to check against", label);

        bool shapes_ok = info.num_features == request->cols && expected->rows == request->rows &&
                         info.num_outputs == expected->cols;
        for (unsigned worker = 0; shapes_ok && worker < 2; worker++) {
            float *out = calloc(expected->count, sizeof(float));
            double worst = 0.0;
            int rc = out == NULL ? -1
                                 : ksv_runtime_xgboost.predict(model, worker, request->data,
                                                               request->rows, request->cols,
                                                               out, &err);
            for (size_t i = 0; rc == 0 && i < expected->count; i++) {
                double diff = fabs((double)out[i] - (double)expected->data[i]);
                if (!(diff <= worst))
                    worst = isnan(diff) ? INFINITY : diff;
            }
            KT_CHECK(rc == 0 && worst <= TOLERANCE,
                     "%s [%s] worker %u: %zu rows match XGBoost (max |diff| %.3g)%s%s", label,
                     POOLS[p], worker, request->rows, worst, rc ? ": " : "", rc ? err.msg : "");
            free(out);
        }
        ksv_runtime_xgboost.unload(model);
    }
}

static const char *find_model_file(const char *dir, char *out, size_t size)
{
    static const char *const NAMES[] = {"model.json", "model.ubj", "model.bst"};
    struct stat st;
    for (size_t i = 0; i < 3; i++) {
        snprintf(out, size, "%s/%s", dir, NAMES[i]);
        if (stat(out, &st) == 0)
            return out;
    }
    return NULL;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void check_data_models(const char *data_dir)
{
    char models_dir[512];
    snprintf(models_dir, sizeof models_dir, "%s/models", data_dir);
    DIR *dir = opendir(models_dir);
    char *names[64];
    size_t n = 0;
    struct dirent *entry;

    KT_CHECK(dir != NULL, "open %s", models_dir);
    if (dir == NULL)
        return;
    while ((entry = readdir(dir)) != NULL && n < 64) {
        if (entry->d_name[0] != '.')
            names[n++] = strdup(entry->d_name);
    }
    closedir(dir);
    qsort(names, n, sizeof names[0], compare_names);
    KT_CHECK(n >= 10, "%zu model folders in %s", n, models_dir);

    for (size_t i = 0; i < n; i++) {
        char folder[800], model_path[900], request_path[1024], expected_path[1024];
        matrix request, expected;
        snprintf(folder, sizeof folder, "%s/%s", models_dir, names[i]);
        snprintf(request_path, sizeof request_path, "%s/requests/%s.json", data_dir, names[i]);
        snprintf(expected_path, sizeof expected_path, "%s/expected/%s.json", data_dir, names[i]);
        bool have_model = find_model_file(folder, model_path, sizeof model_path) != NULL;
        bool have_request = read_request(request_path, &request);
        bool have_expected = read_expected(expected_path, &expected);
        KT_CHECK(have_model && have_request && have_expected,
                 "%s: model, request and expected read", names[i]);
        if (have_model && have_request && have_expected)
            check_model(names[i], names[i], model_path, &request, &expected);
        if (have_request)
            matrix_free(&request);
        if (have_expected)
            matrix_free(&expected);
        free(names[i]);
    }
}

static void check_compat(const char *data_dir, const char *compat_dir)
{
    static const char *const FILES[] = {"model.json", "model.ubj", "model.bst"};
    char request_path[1024], expected_path[1024];
    matrix request, expected;

    snprintf(request_path, sizeof request_path, "%s/iris-input.json", compat_dir);
    snprintf(expected_path, sizeof expected_path, "%s/expected/compat-iris.json", data_dir);
    bool ok = read_request(request_path, &request);
    KT_CHECK(ok, "compat: read %s", request_path);
    if (!ok)
        return;
    ok = read_expected(expected_path, &expected);
    KT_CHECK(ok, "compat: read %s", expected_path);
    if (ok) {
        for (size_t i = 0; i < 3; i++) {
            char model_path[1100], label[64];
            snprintf(model_path, sizeof model_path, "%s/%s", compat_dir, FILES[i]);
            snprintf(label, sizeof label, "compat %s", FILES[i]);
            check_model(label, "compat-iris", model_path, &request, &expected);
        }
        /* KServe's e2e test asserts class 1 for both rows (compat README). */
        KT_CHECK(expected.count == 2 && expected.data[0] == 1.0f && expected.data[1] == 1.0f,
                 "compat: expected file says [1, 1] as KServe's test does");
        matrix_free(&expected);
    }
    matrix_free(&request);
}

/* Deterministic bytes for the garbage files (xorshift; no global state). */
static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

static void expect_load_error(const char *label, const char *path, const char *pool,
                              int want_status)
{
    ksv_runtime_options opts = {.workers = 2, .predict_threads = 1, .booster_pool = pool};
    ksv_model_info info;
    ksv_err err = {0};
    void *model = (void *)&info;  /* must be reset to NULL on failure */
    int rc = ksv_runtime_xgboost.load(path, &opts, &model, &info, &err);
    KT_CHECK(rc == -1 && model == NULL && err.msg[0] != '\0' && err.status == want_status,
             "%s: load fails with %d (%d: %s)", label, want_status, err.status, err.msg);
    if (rc == 0)
        ksv_runtime_xgboost.unload(model);
}

static void check_errors(const char *data_dir)
{
    char tmp[] = "/tmp/ksv-test-xgb-XXXXXX";
    char path[1024], source[1024];
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    unsigned char noise[4096];

    if (mkdtemp(tmp) == NULL) {
        KT_CHECK(false, "mkdtemp: %s", strerror(errno));
        return;
    }
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (unsigned char)next_random(&state);

    for (size_t p = 0; p < 2; p++) {
        const char *pool = POOLS[p];
        snprintf(path, sizeof path, "%s/absent.json", tmp);
        expect_load_error("missing file", path, pool, 404);
        snprintf(path, sizeof path, "%s/absent-dir/model.json", tmp);
        expect_load_error("missing folder", path, pool, 404);
        expect_load_error("empty path", "", pool, 400);
        snprintf(path, sizeof path, "%s/model.txt", tmp);
        kt_write_file(path, "{}", 2);
        expect_load_error("unsupported extension", path, pool, 400);
        snprintf(path, sizeof path, "%s/noextension", tmp);
        kt_write_file(path, "{}", 2);
        expect_load_error("no extension", path, pool, 400);
        snprintf(path, sizeof path, "%s/dir.json", tmp);
        mkdir(path, 0700);
        expect_load_error("folder named .json", path, pool, 400);

        static const char *const EXTS[] = {"json", "ubj", "bst"};
        for (size_t e = 0; e < 3; e++) {
            char label[64];
            snprintf(path, sizeof path, "%s/random.%s", tmp, EXTS[e]);
            kt_write_file(path, noise, sizeof noise);
            snprintf(label, sizeof label, "random bytes .%s", EXTS[e]);
            expect_load_error(label, path, pool, 400);
            snprintf(path, sizeof path, "%s/empty.%s", tmp, EXTS[e]);
            kt_write_file(path, "", 0);
            snprintf(label, sizeof label, "empty .%s", EXTS[e]);
            expect_load_error(label, path, pool, 400);
        }
        /* "binf" then noise: a legacy tag with a garbage header behind it. */
        unsigned char tagged[sizeof noise];
        memcpy(tagged, noise, sizeof tagged);
        memcpy(tagged, "binf", 4);
        snprintf(path, sizeof path, "%s/binf-noise.bst", tmp);
        kt_write_file(path, tagged, sizeof tagged);
        expect_load_error("binf + random bytes .bst", path, pool, 400);

        static const char *const JSON_BROKEN[] = {
            "{", "{}", "{\"learner\": 1}", "[1,2,3]", "{\"learner\":{}}", "null", "{\"version\":[1,7,4]}",
        };
        for (size_t j = 0; j < sizeof JSON_BROKEN / sizeof JSON_BROKEN[0]; j++) {
            char label[96];
            snprintf(path, sizeof path, "%s/broken%zu.json", tmp, j);
            kt_write_file(path, JSON_BROKEN[j], strlen(JSON_BROKEN[j]));
            snprintf(label, sizeof label, "broken JSON %s", JSON_BROKEN[j]);
            expect_load_error(label, path, pool, 400);
        }

        /* Truncations of real models, in each format. */
        static const struct {
            const char *model;
            const char *ext;
        } REAL[] = {{"fraud/model.json", "json"},
                    {"iris-ubj/model.ubj", "ubj"},
                    {"iris-bst/model.bst", "bst"}};
        for (size_t r = 0; r < 3; r++) {
            size_t len = 0;
            snprintf(source, sizeof source, "%s/models/%s", data_dir, REAL[r].model);
            char *bytes = kt_read_file(source, &len);
            KT_CHECK(bytes != NULL, "read %s", source);
            if (bytes == NULL)
                continue;
            static const double FRACTIONS[] = {0.001, 0.1, 0.5, 0.9, 0.999};
            for (size_t f = 0; f < 5; f++) {
                char label[96];
                size_t cut = (size_t)((double)len * FRACTIONS[f]);
                snprintf(path, sizeof path, "%s/truncated%zu.%s", tmp, f, REAL[r].ext);
                kt_write_file(path, bytes, cut);
                snprintf(label, sizeof label, "%s cut to %zu of %zu bytes", REAL[r].model, cut,
                         len);
                expect_load_error(label, path, pool, 400);
                unlink(path);
            }
            free(bytes);
        }
    }

    /* Corrupted copies of real models, in each format: a load either fails with 400 or
     * gives a model that predicts (or refuses) without crashing; ASan watches the rest.
     * KSV_TEST_MUTATIONS=N runs N copies per format instead of 150 (a longer local hunt). */
    {
        const char *env_rounds = getenv("KSV_TEST_MUTATIONS");
        int rounds = env_rounds != NULL && atoi(env_rounds) > 0 ? atoi(env_rounds) : 150;
        static const struct {
            const char *model;
            const char *ext;
        } MUTATE[] = {{"iris/model.json", "json"},
                      {"iris-ubj/model.ubj", "ubj"},
                      {"iris-bst/model.bst", "bst"}};
        for (size_t r = 0; r < 3; r++) {
            size_t len = 0, loaded = 0, refused = 0, bad_status = 0;
            snprintf(source, sizeof source, "%s/models/%s", data_dir, MUTATE[r].model);
            unsigned char *bytes = (unsigned char *)kt_read_file(source, &len);
            unsigned char *copy = bytes != NULL ? malloc(len) : NULL;
            if (copy == NULL) {
                KT_CHECK(false, "read %s", source);
                free(bytes);
                continue;
            }
            snprintf(path, sizeof path, "%s/mutated.%s", tmp, MUTATE[r].ext);
            for (int round = 0; round < rounds; round++) {
                memcpy(copy, bytes, len);
                int flips = 1 + (int)(next_random(&state) % 4);
                for (int f = 0; f < flips; f++)
                    copy[next_random(&state) % len] = (unsigned char)next_random(&state);
                kt_write_file(path, copy, len);
                ksv_runtime_options opts = {.workers = 1};
                ksv_model_info info;
                ksv_err err = {0};
                void *model = NULL;
                if (ksv_runtime_xgboost.load(path, &opts, &model, &info, &err) == 0) {
                    float row[4] = {5.0f, 3.0f, NAN, 1.5f}, out[64];
                    if (info.num_features == 4 && info.num_outputs <= 64)
                        ksv_runtime_xgboost.predict(model, 0, row, 1, 4, out, &err);
                    ksv_runtime_xgboost.unload(model);
                    loaded++;
                } else if (err.status == 400) {
                    refused++;
                } else if (bad_status++ == 0) {
                    printf("  first non-400 refusal: %d %s\n", err.status, err.msg);
                }
            }
            KT_CHECK(bad_status == 0,
                     "%d corrupted copies of %s: %zu refused with 400, %zu loaded, "
                     "%zu other",
                     rounds, MUTATE[r].model, refused, loaded, bad_status);
            unlink(path);
            free(copy);
            free(bytes);
        }
    }

    /* A JSON model behind a byte-order mark: test_model_document, for both runtimes. */

    /* Options that are wrong whatever the file. */
    snprintf(source, sizeof source, "%s/models/iris/model.json", data_dir);
    ksv_runtime_options bad_pool = {.workers = 1, .booster_pool = "pooled"};
    ksv_runtime_options bad_threads = {.workers = 1, .predict_threads = -2};
    ksv_model_info info;
    ksv_err err = {0};
    void *model = NULL;
    KT_CHECK(ksv_runtime_xgboost.load(source, &bad_pool, &model, &info, &err) == -1 &&
                 err.status == 400 && model == NULL,
             "unknown booster_pool refused (%s)", err.msg);
    KT_CHECK(ksv_runtime_xgboost.load(source, &bad_threads, &model, &info, &err) == -1 &&
                 err.status == 400 && model == NULL,
             "negative predict_threads refused (%s)", err.msg);

    /* Predict-time errors on a good model. */
    ksv_runtime_options opts = {.workers = 2, .booster_pool = "per-worker"};
    if (ksv_runtime_xgboost.load(source, &opts, &model, &info, &err) == 0) {
        float row[5] = {5, 3, 1, 0.2f, 9}, out[6];
        KT_CHECK(ksv_runtime_xgboost.predict(model, 0, row, 1, 5, out, &err) == -1 &&
                     err.status == 400,
                 "5 columns for a 4-feature model refused (%s)", err.msg);
        KT_CHECK(ksv_runtime_xgboost.predict(model, 0, row, 1, 3, out, &err) == -1 &&
                     err.status == 400,
                 "3 columns for a 4-feature model refused (%s)", err.msg);
        KT_CHECK(ksv_runtime_xgboost.predict(model, 2, row, 1, 4, out, &err) == -1 &&
                     err.status == 500,
                 "worker index 2 of 2 refused (%s)", err.msg);
        KT_CHECK(ksv_runtime_xgboost.predict(model, 0, row, 0, 4, out, &err) == 0,
                 "zero rows predict nothing and succeed");
        ksv_runtime_xgboost.unload(model);
    } else {
        KT_CHECK(false, "load %s: %s", source, err.msg);
    }
    ksv_runtime_xgboost.unload(NULL);

    /* Clean up the scratch folder. */
    DIR *dir = opendir(tmp);
    struct dirent *entry;
    while (dir != NULL && (entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", tmp, entry->d_name);
        if (unlink(path) != 0)
            rmdir(path);
    }
    if (dir != NULL)
        closedir(dir);
    rmdir(tmp);
}

enum { THREADS = 4, CALLS_PER_THREAD = 2000, MAX_ROWS_PER_CALL = 4 };

typedef struct thread_job {
    void *model;
    unsigned worker;
    size_t cols;
    size_t outputs;
    const float *inputs;       /* CALLS_PER_THREAD * MAX_ROWS_PER_CALL rows */
    const unsigned *rows;      /* rows used by each call */
    const float *reference;    /* single-threaded outputs, same layout */
    float *outputs_buf;
    size_t mismatches;
    size_t errors;
    char first_error[sizeof ((ksv_err *)0)->msg];
} thread_job;

static void *run_job(void *arg)
{
    thread_job *job = arg;
    ksv_err err = {0};
    for (size_t call = 0; call < CALLS_PER_THREAD; call++) {
        const float *x = job->inputs + call * MAX_ROWS_PER_CALL * job->cols;
        const float *want = job->reference + call * MAX_ROWS_PER_CALL * job->outputs;
        size_t rows = job->rows[call];
        if (ksv_runtime_xgboost.predict(job->model, job->worker, x, rows, job->cols,
                                        job->outputs_buf, &err) != 0) {
            if (job->errors++ == 0)
                snprintf(job->first_error, sizeof job->first_error, "%s", err.msg);
            continue;
        }
        if (memcmp(job->outputs_buf, want, rows * job->outputs * sizeof(float)) != 0)
            job->mismatches++;
    }
    return NULL;
}

static void check_concurrency(const char *data_dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/models/fraud/model.json", data_dir);
    for (size_t p = 0; p < 2; p++) {
        ksv_runtime_options opts = {.workers = THREADS, .predict_threads = 1,
                                    .booster_pool = POOLS[p]};
        ksv_model_info info;
        ksv_err err = {0};
        void *model = NULL;
        if (ksv_runtime_xgboost.load(path, &opts, &model, &info, &err) != 0) {
            KT_CHECK(false, "concurrency [%s]: load: %s", POOLS[p], err.msg);
            continue;
        }
        size_t cols = info.num_features, outputs = info.num_outputs;
        size_t in_per_thread = (size_t)CALLS_PER_THREAD * MAX_ROWS_PER_CALL * cols;
        size_t out_per_thread = (size_t)CALLS_PER_THREAD * MAX_ROWS_PER_CALL * outputs;
        float *inputs = malloc(THREADS * in_per_thread * sizeof(float));
        float *reference = malloc(THREADS * out_per_thread * sizeof(float));
        unsigned *rows = malloc(THREADS * CALLS_PER_THREAD * sizeof(unsigned));
        thread_job jobs[THREADS];
        pthread_t threads[THREADS];
        uint64_t state = 0x243f6a8885a308d3ULL + p;
        size_t reference_errors = 0;

        if (inputs == NULL || reference == NULL || rows == NULL) {
            KT_CHECK(false, "concurrency: out of memory");
            goto done;
        }
        for (size_t i = 0; i < THREADS * in_per_thread; i++) {
            uint64_t r = next_random(&state);
            /* ~10% missing, else a value in [-4, 4). */
            inputs[i] = (r % 10 == 0) ? NAN : (float)((double)(r >> 11) / (double)(1ULL << 53) * 8.0 - 4.0);
        }
        for (size_t i = 0; i < THREADS * CALLS_PER_THREAD; i++)
            rows[i] = 1 + (unsigned)(next_random(&state) % MAX_ROWS_PER_CALL);
        /* Reference: the same calls one at a time on worker 0, all rows at once per thread
         * block would also do, but call by call keeps the batch sizes identical. */
        for (size_t t = 0; t < THREADS; t++) {
            for (size_t call = 0; call < CALLS_PER_THREAD; call++) {
                size_t slot = t * CALLS_PER_THREAD + call;
                if (ksv_runtime_xgboost.predict(model, 0, inputs + slot * MAX_ROWS_PER_CALL * cols,
                                                rows[slot], cols,
                                                reference + slot * MAX_ROWS_PER_CALL * outputs,
                                                &err) != 0)
                    reference_errors++;
            }
        }
        KT_CHECK(reference_errors == 0, "concurrency [%s]: single-threaded reference computed",
                 POOLS[p]);
        for (size_t t = 0; t < THREADS; t++) {
            jobs[t] = (thread_job){.model = model, .worker = (unsigned)t, .cols = cols,
                                   .outputs = outputs, .inputs = inputs + t * in_per_thread,
                                   .rows = rows + t * CALLS_PER_THREAD,
                                   .reference = reference + t * out_per_thread};
            jobs[t].outputs_buf = malloc(MAX_ROWS_PER_CALL * outputs * sizeof(float));
        }
        size_t started = 0;
        for (size_t t = 0; t < THREADS; t++) {
            if (jobs[t].outputs_buf != NULL &&
                pthread_create(&threads[t], NULL, run_job, &jobs[t]) == 0)
                started++;
            else
                break;
        }
        for (size_t t = 0; t < started; t++)
            pthread_join(threads[t], NULL);
        KT_CHECK(started == THREADS, "concurrency [%s]: %d threads started", POOLS[p], THREADS);
        for (size_t t = 0; t < started; t++) {
            KT_CHECK(jobs[t].errors == 0 && jobs[t].mismatches == 0,
                     "concurrency [%s]: thread %zu: %d calls, %zu errors, %zu differ from "
                     "single-threaded%s%s",
                     POOLS[p], t, CALLS_PER_THREAD, jobs[t].errors, jobs[t].mismatches,
                     jobs[t].errors ? ": " : "", jobs[t].first_error);
        }
        for (size_t t = 0; t < THREADS; t++)
            free(jobs[t].outputs_buf);
    done:
        free(inputs);
        free(reference);
        free(rows);
        ksv_runtime_xgboost.unload(model);
    }
}

static void check_threads_option(const char *data_dir)
{
    char path[1024], request_path[1024], expected_path[1024];
    matrix request, expected;
    snprintf(path, sizeof path, "%s/models/fraud/model.json", data_dir);
    snprintf(request_path, sizeof request_path, "%s/requests/fraud.json", data_dir);
    snprintf(expected_path, sizeof expected_path, "%s/expected/fraud.json", data_dir);
    if (!read_request(request_path, &request))
        return;
    if (read_expected(expected_path, &expected)) {
        ksv_runtime_options opts = {.workers = 1, .predict_threads = 2, .booster_pool = "shared"};
        ksv_model_info info;
        ksv_err err = {0};
        void *model = NULL;
        float out[64];
        int rc = ksv_runtime_xgboost.load(path, &opts, &model, &info, &err);
        if (rc == 0 && expected.count <= 64)
            rc = ksv_runtime_xgboost.predict(model, 0, request.data, request.rows, request.cols,
                                             out, &err);
        double worst = 0;
        for (size_t i = 0; rc == 0 && i < expected.count; i++)
            worst = fmax(worst, fabs((double)out[i] - (double)expected.data[i]));
        KT_CHECK(rc == 0 && worst <= TOLERANCE, "predict_threads=2: matches XGBoost (%.3g)%s",
                 worst, rc ? err.msg : "");
        if (model != NULL)
            ksv_runtime_xgboost.unload(model);
        matrix_free(&expected);
    }
    matrix_free(&request);
}

static void check_registry(void)
{
    KT_CHECK(ksv_runtime_find("ksv-xgboost") == &ksv_runtime_xgboost, "registry finds ksv-xgboost");
    KT_CHECK(ksv_runtime_find("ksv-nope") == NULL, "registry: unknown name gives NULL");
    KT_CHECK(ksv_runtime_find("") == NULL && ksv_runtime_find(NULL) == NULL,
             "registry: empty and NULL names give NULL");
    const char *names = ksv_runtime_names();
    KT_CHECK(names != NULL && strstr(names, "ksv-xgboost") != NULL, "registry names: \"%s\"",
             names ? names : "(null)");
    /* Every listed name resolves to ops carrying that same name. */
    char copy[256];
    snprintf(copy, sizeof copy, "%s", names ? names : "");
    size_t listed = 0;
    for (char *save = NULL, *tok = strtok_r(copy, ", ", &save); tok != NULL;
         tok = strtok_r(NULL, ", ", &save)) {
        const ksv_runtime_ops *ops = ksv_runtime_find(tok);
        KT_CHECK(ops != NULL && strcmp(ops->name, tok) == 0, "registry: \"%s\" resolves to itself",
                 tok);
        listed++;
    }
    KT_CHECK(listed >= 1, "registry lists %zu runtime(s)", listed);
}

int main(void)
{
    const char *env_compat = getenv("KSV_COMPAT_DIR");
    char data_dir[400], compat_dir[600];

    kt_data_dir(data_dir, sizeof data_dir);
    if (env_compat && *env_compat)
        snprintf(compat_dir, sizeof compat_dir, "%s", env_compat);
    else
        snprintf(compat_dir, sizeof compat_dir, "%s/compat/kserve-xgboost-iris", data_dir);
    printf("data: %s\ncompat: %s\n", data_dir, compat_dir);

    setvbuf(stdout, NULL, _IOLBF, 0);
    kt_set_verbose(true);
    check_registry();
    check_data_models(data_dir);
    check_compat(data_dir, compat_dir);
    check_errors(data_dir);
    check_threads_option(data_dir);
    check_concurrency(data_dir);

    return kt_summary("test_runtime_xgboost");
}
