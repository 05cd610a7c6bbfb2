/* repository.c: unloaded models and the --model-dir folder, for the repository extension. */
#include "engine/repository.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct ksv_repository {
    pthread_mutex_t mu;           /* guards unloaded[] */
    ksv_model_spec **unloaded;
    size_t n_unloaded, cap_unloaded;
    char *model_dir;              /* absolute, or NULL */
    char runtime[32];
};

int ksv_repository_create(const char *model_dir, const char *default_runtime,
                          ksv_repository **out, ksv_err *err)
{
    ksv_repository *repo = calloc(1, sizeof *repo);
    if (!repo)
        return ksv_err_set(err, 500, "out of memory");
    pthread_mutex_init(&repo->mu, NULL);
    snprintf(repo->runtime, sizeof repo->runtime, "%s", default_runtime);
    if (model_dir) {
        repo->model_dir = realpath(model_dir, NULL);
        if (!repo->model_dir) {
            int e = errno;
            ksv_repository_destroy(repo);
            return ksv_err_set(err, 500, "--model-dir %s: %s", model_dir, strerror(e));
        }
    }
    *out = repo;
    return 0;
}

void ksv_repository_destroy(ksv_repository *repo)
{
    if (!repo)
        return;
    for (size_t i = 0; i < repo->n_unloaded; i++)
        free(repo->unloaded[i]);
    free(repo->unloaded);
    free(repo->model_dir);
    pthread_mutex_destroy(&repo->mu);
    free(repo);
}

/* Index in unloaded[] of the model, or -1. Call with mu held. */
static long find_unloaded(const ksv_repository *repo, const char *model)
{
    for (size_t i = 0; i < repo->n_unloaded; i++)
        if (strcmp(repo->unloaded[i]->name, model) == 0)
            return (long)i;
    return -1;
}

int ksv_repository_unload(ksv_repository *repo, ksv_registry *reg, const char *model,
                          ksv_err *err)
{
    ksv_model_spec *spec = malloc(sizeof *spec);
    if (!spec)
        return ksv_err_set(err, 500, "out of memory");
    pthread_mutex_lock(&repo->mu);
    int rc = 0;
    if (repo->n_unloaded == repo->cap_unloaded) {
        size_t cap = repo->cap_unloaded ? repo->cap_unloaded * 2 : 8;
        ksv_model_spec **p = realloc(repo->unloaded, cap * sizeof *p);
        if (!p)
            rc = ksv_err_set(err, 500, "out of memory");
        else {
            repo->unloaded = p;
            repo->cap_unloaded = cap;
        }
    }
    if (rc == 0)
        rc = ksv_registry_take_out(reg, model, spec, err);
    if (rc == 0) {
        long old = find_unloaded(repo, model); /* unloaded, loaded again, unloaded again */
        if (old >= 0) {
            free(repo->unloaded[old]);
            repo->unloaded[old] = spec;
        } else {
            repo->unloaded[repo->n_unloaded++] = spec;
        }
        spec = NULL;
    }
    pthread_mutex_unlock(&repo->mu);
    free(spec);
    return rc;
}

/* The --model-dir folder of that name, when there is one. */
static bool model_dir_path(const ksv_repository *repo, const char *model, char *path,
                           size_t cap)
{
    struct stat st;
    if (!repo->model_dir || !ksv_valid_name(model))
        return false;
    if ((size_t)snprintf(path, cap, "%s/%s", repo->model_dir, model) >= cap)
        return false;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int ksv_repository_load(ksv_repository *repo, ksv_registry *reg, const char *model,
                        ksv_err *err)
{
    if (ksv_registry_ready(reg, model, NULL) >= 0)
        return 0; /* already served: nothing to load */
    pthread_mutex_lock(&repo->mu);
    int rc;
    long i = find_unloaded(repo, model);
    char path[PATH_MAX];
    if (i >= 0) {
        rc = ksv_registry_put(reg, repo->unloaded[i], err);
        if (rc == 0) {
            free(repo->unloaded[i]);
            repo->unloaded[i] = repo->unloaded[--repo->n_unloaded];
        }
    } else if (model_dir_path(repo, model, path, sizeof path)) {
        ksv_model_spec *spec = malloc(sizeof *spec);
        if (!spec) {
            rc = ksv_err_set(err, 500, "out of memory");
        } else {
            ksv_model_spec_standalone(spec, model, path, repo->runtime);
            rc = ksv_registry_put(reg, spec, err);
            free(spec);
        }
    } else {
        rc = ksv_err_set(err, 400,
                         "failed to load '%s': no such model in the repository (neither "
                         "unloaded here nor a folder of --model-dir)",
                         model);
    }
    pthread_mutex_unlock(&repo->mu);
    return rc;
}

typedef struct index_ctx {
    ksv_sb *sb;
    bool ready_only;
    bool first;
} index_ctx;

static void put_entry(index_ctx *c, const char *model, const char *version, const char *state,
                      const char *reason)
{
    if (c->ready_only && strcmp(state, "READY") != 0)
        return;
    ksv_sb_puts(c->sb, c->first ? "{\"name\":" : ",{\"name\":");
    c->first = false;
    ksv_sb_json_str(c->sb, model);
    if (version) {
        ksv_sb_puts(c->sb, ",\"version\":");
        ksv_sb_json_str(c->sb, version);
    }
    ksv_sb_puts(c->sb, ",\"state\":\"");
    ksv_sb_puts(c->sb, state);
    ksv_sb_puts(c->sb, "\",\"reason\":");
    ksv_sb_json_str(c->sb, reason);
    ksv_sb_putc(c->sb, '}');
}

static void index_revision(void *ctx, const char *model, const ksv_engine_revision *rev,
                           bool serving)
{
    (void)serving;
    const char *state = "UNAVAILABLE", *reason = "";
    switch (rev->state) {
    case KSV_REV_LOADING:
        state = "LOADING";
        break;
    case KSV_REV_READY:
    case KSV_REV_DRAINING:
    case KSV_REV_STANDBY:
        state = "READY";
        break;
    case KSV_REV_SCALED_TO_ZERO:
        /* It takes requests: the first one loads it (docs/OPERATIONS.md, "Scale to zero"). */
        state = "READY";
        reason = "scaled to zero";
        break;
    case KSV_REV_UNLOADED:
        reason = "unloaded (no traffic)";
        break;
    case KSV_REV_FAILED:
        reason = rev->error[0] ? rev->error : "failed to load";
        break;
    }
    put_entry(ctx, model, rev->spec.name, state, reason);
}

void ksv_repository_write_index(ksv_repository *repo, ksv_registry *reg, bool ready_only,
                                ksv_sb *sb)
{
    index_ctx c = {.sb = sb, .ready_only = ready_only, .first = true};
    ksv_sb_putc(sb, '[');
    ksv_registry_visit(reg, NULL, NULL, index_revision, &c, NULL);
    pthread_mutex_lock(&repo->mu);
    for (size_t i = 0; i < repo->n_unloaded; i++) {
        const ksv_model_spec *spec = repo->unloaded[i];
        for (size_t r = 0; r < spec->n_revisions; r++)
            put_entry(&c, spec->name, spec->revisions[r].name, "UNAVAILABLE", "unloaded");
    }
    if (repo->model_dir) {
        DIR *d = opendir(repo->model_dir);
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) {
            char path[PATH_MAX];
            if (de->d_name[0] == '.' || find_unloaded(repo, de->d_name) >= 0 ||
                ksv_registry_ready(reg, de->d_name, NULL) >= 0 ||
                !model_dir_path(repo, de->d_name, path, sizeof path))
                continue;
            put_entry(&c, de->d_name, NULL, "UNAVAILABLE", "not loaded");
        }
        if (d)
            closedir(d);
    }
    pthread_mutex_unlock(&repo->mu);
    ksv_sb_putc(sb, ']');
}
