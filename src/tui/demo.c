/* demo.c: the self-contained demo behind `ksv-top --demo`. */
#include "tui/demo.h"

#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileutil.h"
#include "common/manifest.h"
#include "control/control.h"

#define DEMO_NODE "demo"
#define DEMO_RPS 50.0
#define DEMO_BAD_FRACTION 0.01

typedef struct demo_load {
    pthread_t thread;
    bool started;
    ksv_load_config cfg;
    char url[512];
    char *body;
    size_t body_len;
} demo_load;

struct tui_demo {
    char dir[PATH_MAX];
    char db[PATH_MAX + 16];
    bool engine_started;
    atomic_bool stop;
    demo_load loads[3];
    char argv0[PATH_MAX];
};

/* Model name, data file of its request body. */
static const char *const demo_models[3][2] = {
    {"fraud", "fraud.json"}, {"iris", "iris.json"}, {"churn", "churn-v1.json"}};

static int find_data_dir(char *out, size_t cap)
{
    const char *env = getenv("KSV_DATA_DIR");
    const char *candidates[3] = {env && *env ? env : NULL,
#ifdef KSV_SRCDIR
                                 KSV_SRCDIR "/data",
#else
                                 NULL,
#endif
#ifdef KSV_DATADIR
                                 KSV_DATADIR,
#else
                                 NULL,
#endif
    };
    for (int i = 0; i < 3; i++) {
        if (!candidates[i])
            continue;
        char probe[PATH_MAX];
        snprintf(probe, sizeof probe, "%s/models/churn-v1/model.json", candidates[i]);
        if (access(probe, R_OK) == 0) {
            snprintf(out, cap, "%s", candidates[i]);
            return 0;
        }
        if (i == 0)
            return -1; /* an explicit KSV_DATA_DIR is not second-guessed */
    }
    return -1;
}

static int write_manifests(const char *dir, const char *data, char *base, char *canary,
                           size_t cap, ksv_err *err)
{
    ksv_sb sb;
    ksv_sb_init(&sb);
    ksv_sb_printf(&sb,
                  "# ksv-top --demo: the demo models; churn's stable revision runs on ksv-forest\n"
                  "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
                  "metadata:\n  name: fraud\nspec:\n  predictor:\n    model:\n"
                  "      modelFormat:\n        name: xgboost\n"
                  "      storageUri: %s/models/fraud/model.json\n"
                  "---\napiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
                  "metadata:\n  name: iris\nspec:\n  predictor:\n    model:\n"
                  "      modelFormat:\n        name: xgboost\n"
                  "      storageUri: %s/models/iris/model.json\n"
                  "---\napiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
                  "metadata:\n  name: churn\nspec:\n  predictor:\n    model:\n"
                  "      modelFormat:\n        name: xgboost\n      runtime: ksv-forest\n"
                  "      storageUri: %s/models/churn-v1/model.json\n",
                  data, data, data);
    snprintf(base, cap, "%s/demo.yaml", dir);
    int rc = ksv_write_file_atomic(base, sb.data, sb.len, 0600, err);
    ksv_sb_reset(&sb);
    /* A release gate rolls the canary out in the engine: 10% more every 5 s, judged on its
     * success rate (the demo traffic's 1% malformed requests stay above 95%) and P99. */
    static const char gate[] =
        "---\napiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata:\n  name: churn\n"
        "spec:\n  targetRef: {apiVersion: serving.kserve.io/v1beta1, kind: InferenceService, "
        "name: churn}\n  analysis:\n    interval: 5s\n    threshold: 2\n"
        "    stepWeights: [10, 20, 30, 40, 50]\n    metrics:\n"
        "    - {name: request-success-rate, thresholdRange: {min: 95}, minRequests: 20}\n"
        "    - {name: request-duration, thresholdRange: {max: 500}, minRequests: 20}\n";
    ksv_sb_printf(&sb,
                  "# ksv-top --demo: churn's canary, on ksv-xgboost (measurably slower),\n"
                  "# rolled out by the engine's release gate\n"
                  "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
                  "metadata:\n  name: churn\nspec:\n  predictor:\n"
                  "    model:\n      modelFormat:\n        name: xgboost\n"
                  "      runtime: ksv-xgboost\n"
                  "      storageUri: %s/models/churn-v2/model.json\n%s",
                  data, gate);
    snprintf(canary, cap, "%s/churn-canary.yaml", dir);
    if (rc == 0)
        rc = ksv_write_file_atomic(canary, sb.data, sb.len, 0600, err);
    /* `:badcanary` applies this one: a model of another feature count, every answer a 400,
     * which the gate rolls back by itself. */
    ksv_sb_reset(&sb);
    ksv_sb_printf(&sb,
                  "# ksv-top --demo, :badcanary: a canary that rejects churn's requests\n"
                  "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
                  "metadata:\n  name: churn\nspec:\n  predictor:\n"
                  "    model:\n      modelFormat:\n        name: xgboost\n"
                  "      storageUri: %s/models/fraud/model.json\n%s",
                  data, gate);
    char bad[PATH_MAX + 32];
    snprintf(bad, sizeof bad, "%s/churn-bad-canary.yaml", dir);
    if (rc == 0)
        rc = ksv_write_file_atomic(bad, sb.data, sb.len, 0600, err);
    ksv_sb_free(&sb);
    return rc;
}

static int apply_file(ksv_ctl *ctl, const char *path, ksv_err *err)
{
    ksv_manifest_list list;
    if (ksv_manifest_load_file(path, &list, err) != 0)
        return -1;
    ksv_apply_options o = {.timeout_s = 60};
    ksv_ctl_result res = {0};
    int rc = ksv_ctl_apply(ctl, &list, &o, &res, err);
    if (rc == 0 && !ksv_ctl_result_ok(&res)) {
        ksv_err_set(err, 500, "demo apply %s: %s", path,
                    res.n ? res.nodes[0].message : res.summary);
        rc = -1;
    }
    ksv_ctl_result_free(&res);
    ksv_manifest_list_free(&list);
    return rc;
}

static void *load_main(void *arg)
{
    demo_load *l = arg;
    /* Runs of an hour each (the generator bounds a run's length) until the demo ends; a run
     * that cannot start ends the demo traffic rather than spinning. */
    ksv_load_report *report = malloc(sizeof *report);
    ksv_err err;
    while (report && !atomic_load(l->cfg.stop) && ksv_load_run(&l->cfg, report, &err) == 0)
        ;
    free(report);
    return NULL;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

int tui_demo_start(const char *argv0, void (*progress)(const char *line), tui_demo **out,
                   ksv_err *err)
{
    *out = NULL;
    char data[PATH_MAX];
    if (find_data_dir(data, sizeof data) != 0)
        return ksv_err_set(err, 404, "demo data not found (set KSV_DATA_DIR to ksv's data/ "
                                     "folder)");
    tui_demo *d = calloc(1, sizeof *d);
    if (!d)
        return ksv_err_set(err, 500, "out of memory");
    atomic_init(&d->stop, false);
    snprintf(d->argv0, sizeof d->argv0, "%s", argv0 ? argv0 : "");
    const char *tmp = getenv("TMPDIR");
    snprintf(d->dir, sizeof d->dir, "%s/ksv-demo-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(d->dir)) {
        free(d);
        return ksv_err_set(err, 500, "cannot create a temporary directory");
    }
    snprintf(d->db, sizeof d->db, "%s/ksv.db", d->dir);
    *out = d;
    ksv_ctl *ctl = NULL;
    ksv_ctl_options o = {.db_path = d->db, .argv0 = argv0};
    char engine_dir[PATH_MAX + 16], base[PATH_MAX + 32], canary[PATH_MAX + 32], url[256];
    snprintf(engine_dir, sizeof engine_dir, "%s/engine", d->dir);
    if (ksv_ctl_global_init(err) != 0 || ksv_ctl_open(&o, &ctl, err) != 0)
        return -1;
    if (progress)
        progress("ksv-top --demo: starting a local engine");
    ksv_node_add_options na = {.engine_state_dir = engine_dir};
    ksv_ctl_result res = {0};
    int rc = ksv_ctl_node_add(ctl, DEMO_NODE, "local", &na, &res, err);
    ksv_ctl_result_free(&res);
    d->engine_started = rc == 0;
    if (rc == 0 && progress)
        progress("ksv-top --demo: applying the demo models (churn with a canary)");
    if (rc == 0)
        rc = write_manifests(d->dir, data, base, canary, sizeof base, err);
    if (rc == 0)
        rc = apply_file(ctl, base, err);
    if (rc == 0)
        rc = apply_file(ctl, canary, err);
    if (rc == 0)
        rc = ksv_ctl_local_node_url(ctl, DEMO_NODE, url, sizeof url, err);
    ksv_ctl_close(ctl);
    if (rc != 0)
        return -1;
    for (size_t i = 0; i < 3; i++) {
        demo_load *l = &d->loads[i];
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/requests/%s", data, demo_models[i][1]);
        if (ksv_read_file(path, 1 << 20, &l->body, &l->body_len, err) != 0)
            return -1;
        snprintf(l->url, sizeof l->url, "%s/v2/models/%s/infer", url, demo_models[i][0]);
        l->cfg = (ksv_load_config){
            .url = l->url, .body = l->body, .body_len = l->body_len, .rps = DEMO_RPS,
            .duration_s = 3600, .concurrency = 4,
            .bad_fraction = DEMO_BAD_FRACTION, .seed = i + 1, .stop = &d->stop,
        };
        l->started = pthread_create(&l->thread, NULL, load_main, l) == 0;
    }
    if (progress)
        progress("ksv-top --demo: demo traffic running (50 rps per model, 1% malformed)");
    return 0;
}

const char *tui_demo_dir(const tui_demo *d)
{
    return d->dir;
}

const char *tui_demo_db(const tui_demo *d)
{
    return d->db;
}

void tui_demo_stop(tui_demo *d)
{
    if (!d)
        return;
    atomic_store(&d->stop, true);
    for (size_t i = 0; i < 3; i++) {
        if (d->loads[i].started)
            pthread_join(d->loads[i].thread, NULL);
        free(d->loads[i].body);
    }
    if (d->engine_started) {
        ksv_ctl *ctl;
        ksv_err err;
        ksv_ctl_options o = {.db_path = d->db, .argv0 = d->argv0};
        if (ksv_ctl_open(&o, &ctl, &err) == 0) {
            ksv_ctl_local_node_stop(ctl, DEMO_NODE, 5000, &err);
            ksv_ctl_close(ctl);
        }
    }
    nftw(d->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(d);
}
