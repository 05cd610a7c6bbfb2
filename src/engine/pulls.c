/* pulls.c: fetches into the cache ahead of a rollout, and their progress (see pulls.h). */
#include "engine/pulls.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/uri_redact.h"

typedef enum { PULL_RUNNING, PULL_DONE, PULL_FAILED } pull_state;

typedef struct pull {
    struct ksv_pulls *owner;
    uint64_t id;
    char uri[KSV_PULL_URI_MAX + 1];  /* what is fetched */
    char shown[KSV_URI_SHOWN_MAX];   /* its display form: logs and GET /ksv/v1/pulls */
    char sha256[65];
    char model[KSV_PULL_MODEL_MAX + 1];
    pull_state state;             /* guarded by the owner's mutex */
    bool starting;                /* ksv_pulls_start still uses it: never dropped */
    char error[512];              /* the same */
    ksv_fetch_progress progress;  /* written by the fetch job, read by anyone */
} pull;

struct ksv_pulls {
    pthread_mutex_t mu;
    ksv_fetch_pool *pool;
    ksv_cache *cache;
    pull *items[KSV_PULLS_MAX];   /* oldest first */
    size_t n;
    uint64_t next_id;
};

int ksv_pulls_create(ksv_fetch_pool *pool, ksv_cache *cache, ksv_pulls **out, ksv_err *err)
{
    ksv_pulls *p = calloc(1, sizeof *p);
    if (!p)
        return ksv_err_set(err, 500, "out of memory");
    pthread_mutex_init(&p->mu, NULL);
    p->pool = pool;
    p->cache = cache;
    p->next_id = 1;
    *out = p;
    return 0;
}

void ksv_pulls_destroy(ksv_pulls *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->items[i]);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Runs on a fetch pool thread (or in the pool's destroy) when the pull's job ends. Once its
 * state says it ended, another request may drop the record: it is the last thing done. */
static void pull_done(void *user, uint64_t id, int rc, const ksv_fetch_result *res,
                      const ksv_err *err)
{
    (void)id;
    pull *pl = user;
    ksv_pulls *p = pl->owner;
    if (rc == 0) {
        /* Nothing loads it now: the cache may evict it once a revision needs the room, as
         * with any tree that no loaded revision uses. */
        ksv_cache_unpin(p->cache, res->tree);
        ksv_log(KSV_LOG_INFO, NULL, "pull %s: in the cache (%lld bytes)", pl->shown,
                atomic_load(&pl->progress.bytes));
    } else {
        ksv_log(KSV_LOG_WARN, NULL, "pull %s: %s", pl->shown, err ? err->msg : "failed");
    }
    pthread_mutex_lock(&p->mu);
    snprintf(pl->error, sizeof pl->error, "%s", rc == 0 ? "" : err ? err->msg : "failed");
    pl->state = rc == 0 ? PULL_DONE : PULL_FAILED;
    pthread_mutex_unlock(&p->mu);
}

static const char *state_name(const pull *pl)
{
    if (pl->state == PULL_DONE)
        return "done";
    if (pl->state == PULL_FAILED)
        return "failed";
    return atomic_load(&pl->progress.started_us) ? "pulling" : "queued";
}

/* Caller holds the mutex. */
static void write_pull(const pull *pl, ksv_sb *sb)
{
    ksv_sb_printf(sb, "{\"id\":%llu,\"storage_uri\":", (unsigned long long)pl->id);
    ksv_sb_json_str(sb, pl->shown);
    ksv_sb_puts(sb, ",\"sha256\":");
    ksv_sb_json_str(sb, pl->sha256);
    ksv_sb_puts(sb, ",\"model\":");
    ksv_sb_json_str(sb, pl->model);
    ksv_sb_printf(sb, ",\"state\":\"%s\",\"progress\":", state_name(pl));
    ksv_fetch_progress_json(&pl->progress, sb);
    if (pl->error[0]) {
        ksv_sb_puts(sb, ",\"error\":");
        ksv_sb_json_str(sb, pl->error);
    }
    ksv_sb_putc(sb, '}');
}

void ksv_pulls_write(ksv_pulls *p, ksv_sb *sb)
{
    ksv_sb_putc(sb, '[');
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n; i++) {
        if (i)
            ksv_sb_putc(sb, ',');
        write_pull(p->items[i], sb);
    }
    pthread_mutex_unlock(&p->mu);
    ksv_sb_putc(sb, ']');
}

static bool remote_scheme(const char *uri)
{
    static const char *const schemes[] = {"http://", "https://", "s3://", "gs://", "hf://"};
    for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
        if (strncmp(uri, schemes[i], strlen(schemes[i])) == 0)
            return uri[strlen(schemes[i])] != '\0';
    return false;
}

/* A string field of the body: NULL when absent; *bad set when present but not a string. */
static const char *string_field(json_object *body, const char *key, bool *bad)
{
    json_object *v;
    if (!json_object_object_get_ex(body, key, &v))
        return NULL;
    /* A NUL inside (\u0000) would cut the string short of what was sent. */
    if (!json_object_is_type(v, json_type_string) ||
        strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v)) {
        *bad = true;
        return NULL;
    }
    return json_object_get_string(v);
}

/* Checks the body and copies its fields into pl. */
static int read_body(json_object *body, pull *pl, ksv_err *err)
{
    if (!json_object_is_type(body, json_type_object))
        return ksv_err_set(err, 400, "pull: the body must be a JSON object");
    json_object_object_foreach(body, key, val) {
        (void)val;
        if (strcmp(key, "storage_uri") != 0 && strcmp(key, "sha256") != 0 &&
            strcmp(key, "model") != 0)
            return ksv_err_set(err, 400, "pull: unknown field \"%.64s\" (storage_uri, sha256, "
                                         "model)", key);
    }
    bool bad = false;
    const char *uri = string_field(body, "storage_uri", &bad);
    const char *sha = string_field(body, "sha256", &bad);
    const char *model = string_field(body, "model", &bad);
    if (bad)
        return ksv_err_set(err, 400, "pull: storage_uri, sha256 and model are strings (without "
                                     "NUL)");
    if (!uri || !*uri)
        return ksv_err_set(err, 400, "pull: storage_uri is required");
    size_t len = strlen(uri);
    if (len > KSV_PULL_URI_MAX)
        return ksv_err_set(err, 400, "pull: storage_uri is longer than %d bytes",
                           KSV_PULL_URI_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)uri[i] <= ' ' || uri[i] == 0x7f)
            return ksv_err_set(err, 400, "pull: storage_uri has a space or control character");
    if (!remote_scheme(uri))
        return ksv_err_set(err, 400, "pull: storage_uri must be http(s)://, s3://, gs:// or "
                                     "hf:// (a local path needs no pull)");
    if (sha && *sha) {
        if (strlen(sha) != 64)
            return ksv_err_set(err, 400, "pull: sha256 must be 64 hex digits");
        for (size_t i = 0; i < 64; i++) {
            if (!isxdigit((unsigned char)sha[i]))
                return ksv_err_set(err, 400, "pull: sha256 must be 64 hex digits");
            pl->sha256[i] = (char)tolower((unsigned char)sha[i]);
        }
        pl->sha256[64] = '\0';
    }
    if (model) {
        size_t n = strlen(model);
        if (n > KSV_PULL_MODEL_MAX)
            return ksv_err_set(err, 400, "pull: model is longer than %d bytes",
                               KSV_PULL_MODEL_MAX);
        for (size_t i = 0; i < n; i++)
            if (!isalnum((unsigned char)model[i]) && !strchr("._-/", model[i]))
                return ksv_err_set(err, 400, "pull: model may hold only letters, digits and "
                                             "._-/");
        memcpy(pl->model, model, n + 1);
    }
    memcpy(pl->uri, uri, len + 1);
    ksv_uri_redact(pl->shown, sizeof pl->shown, uri);
    return 0;
}

/* Room for one more: drops the oldest finished pull. Caller holds the mutex. */
static bool make_room(ksv_pulls *p)
{
    if (p->n < KSV_PULLS_MAX)
        return true;
    for (size_t i = 0; i < p->n; i++)
        if (p->items[i]->state != PULL_RUNNING && !p->items[i]->starting) {
            free(p->items[i]);
            memmove(&p->items[i], &p->items[i + 1], (p->n - i - 1) * sizeof *p->items);
            p->n--;
            return true;
        }
    return false;
}

int ksv_pulls_start(ksv_pulls *p, json_object *body, bool *created, ksv_sb *answer,
                    ksv_err *err)
{
    *created = false;
    pull *pl = calloc(1, sizeof *pl);
    if (!pl)
        return ksv_err_set(err, 500, "out of memory");
    if (read_body(body, pl, err) != 0) {
        free(pl);
        return -1;
    }
    pl->owner = p;
    pl->state = PULL_RUNNING;
    pl->starting = true;
    atomic_init(&pl->progress.total, -1);
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n; i++) {
        pull *o = p->items[i];
        if (o->state == PULL_RUNNING && strcmp(o->uri, pl->uri) == 0 &&
            strcmp(o->sha256, pl->sha256) == 0) {
            write_pull(o, answer);
            pthread_mutex_unlock(&p->mu);
            free(pl);
            return 0;
        }
    }
    if (!make_room(p)) {
        pthread_mutex_unlock(&p->mu);
        free(pl);
        return ksv_err_set(err, 429, "pull: %d pulls are running already; try again when one "
                                     "ends", KSV_PULLS_MAX);
    }
    pl->id = p->next_id++;
    p->items[p->n++] = pl;
    /* The job may end (and take the mutex) before submit returns, so the mutex is let go
     * first; the record stays: only finished pulls are ever dropped. */
    pthread_mutex_unlock(&p->mu);
    ksv_err why;
    uint64_t job = ksv_fetch_submit(p->pool, pl->uri, pl->sha256, true, &pl->progress,
                                    pull_done, pl, &why);
    pthread_mutex_lock(&p->mu);
    if (!job) {
        pl->state = PULL_FAILED;
        snprintf(pl->error, sizeof pl->error, "%s", why.msg);
    }
    write_pull(pl, answer);
    ksv_log(KSV_LOG_INFO, NULL, "pull %s: started%s%s", pl->shown, pl->model[0] ? " for model " : "",
            pl->model);
    pl->starting = false;
    pthread_mutex_unlock(&p->mu);
    *created = true;
    return 0;
}
