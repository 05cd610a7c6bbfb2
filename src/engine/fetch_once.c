/* fetch_once.c: `ksv-engine --fetch URI` (see fetch_once.h). */
#include "engine/fetch_once.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fileutil.h"
#include "common/model_path.h"
#include "common/uri_redact.h"
#include "engine/cache.h"
#include "engine/storage.h"

/* Opening a cache empties its staging folder (downloads a crashed run left): two of these
 * at once on one state dir (two ksv commands pushing) would empty each other's. They take
 * turns instead, waiting on STATE_DIR/fetch.lock. */
static int hold_cache(const char *state_dir, int *fd, ksv_err *err)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/fetch.lock", state_dir) >= sizeof path)
        return ksv_err_set(err, 400, "--state-dir: path too long");
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0)
        return ksv_err_set(err, 500, "%s: %s", path, strerror(errno));
    while (flock(*fd, LOCK_EX) != 0)
        if (errno != EINTR)
            return ksv_err_set(err, 500, "%s: %s", path, strerror(errno));
    /* Nor beside an engine serving from this state dir: its downloads stage there too. */
    snprintf(path, sizeof path, "%s/lock", state_dir);
    int engine_lock = open(path, O_RDONLY | O_CLOEXEC);
    bool serving = engine_lock >= 0 && flock(engine_lock, LOCK_SH | LOCK_NB) != 0 &&
                   errno == EWOULDBLOCK;
    if (engine_lock >= 0)
        close(engine_lock);
    if (serving)
        return ksv_err_set(err, 409, "--state-dir %s: an engine serves from it; --fetch needs a "
                                     "state dir of its own", state_dir);
    return 0;
}

int ksv_fetch_once(const ksv_engine_options *opt)
{
    ksv_err err;
    ksv_err_clear(&err);
    char dir[PATH_MAX], file[4096];
    ksv_cache *cache = NULL;
    ksv_fetch_result res = {0};
    int rc = -1, lock_fd = -1;
    char shown[KSV_URI_SHOWN_MAX]; /* what messages and the output name: no credentials */
    ksv_uri_redact(shown, sizeof shown, opt->fetch_uri);
    if ((size_t)snprintf(dir, sizeof dir, "%s/cache", opt->state_dir) >= sizeof dir) {
        ksv_err_set(&err, 400, "--state-dir: path too long");
    } else if (!ksv_storage_is_remote(opt->fetch_uri)) {
        ksv_err_set(&err, 400, "--fetch %s: not a URI to fetch (s3://, gs://, hf://, http(s)://)",
                    shown);
    } else if (ksv_mkdir_p(dir, 0700, &err) == 0 && hold_cache(opt->state_dir, &lock_fd, &err) == 0 &&
               ksv_cache_open(dir, opt->cache_max, &cache, &err) == 0) {
        ksv_fetch_ctl ctl = {
            .deadline = ksv_mono_s() + opt->fetch_timeout,
            .deadline_s = opt->fetch_timeout,
            .stall_s = opt->fetch_stall,
            .max_bytes = opt->max_model_size,
            .any_file = true,
            .cache = cache,
        };
        rc = ksv_storage_fetch(opt->fetch_uri, cache, opt->fetch_sha256, &ctl, &res, &err);
        /* One file goes to the node: the model itself, found as a folder's one model file. */
        if (rc == 0)
            rc = ksv_model_path_resolve(res.path, shown, file, sizeof file, &err);
        if (rc == 0)
            printf("%s\n", file);
        if (res.tree[0])
            ksv_cache_unpin(cache, res.tree);
    }
    ksv_cache_close(cache);
    if (lock_fd >= 0)
        close(lock_fd);
    if (rc != 0) {
        fprintf(stderr, "ksv-engine: %s\n", err.msg);
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
