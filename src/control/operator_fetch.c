/* operator_fetch.c: ksv.io/fetch: operator. An SSH node that cannot reach the model's store
 * gets the model from ksv instead: ksv fetches it here, with the engine's own fetchers
 * (`ksv-engine --fetch URI`, run as a child: the storage code stays in the engine), into a
 * cache of the operator's ($XDG_CACHE_HOME/ksv/operator-fetch/cache), and the push sends
 * the file by SFTP as it sends a local model file. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/fileutil.h"
#include "control/control_internal.h"
#include "remote/local_node.h"

#define OUTPUT_MAX 8192

bool ctl_fetch_on_operator(const ksv_model_record *m)
{
    json_object *root = json_tokener_parse(m->annotations_json ? m->annotations_json : "{}"), *v;
    bool yes = root && json_object_object_get_ex(root, KSV_ANNOTATION_FETCH, &v) &&
               json_object_is_type(v, json_type_string) &&
               strcmp(json_object_get_string(v), "operator") == 0;
    json_object_put(root);
    return yes;
}

static void cache_dir(char *out, size_t cap)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(out, cap, "%s/ksv/operator-fetch", xdg);
    else
        snprintf(out, cap, "%s/.cache/ksv/operator-fetch", home && *home ? home : ".");
}

/* Reads the child's stdout and stderr to their ends (each kept up to OUTPUT_MAX). */
static void drain(int out_fd, int err_fd, char *out, char *errs)
{
    size_t n_out = 0, n_err = 0;
    struct pollfd p[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    while (p[0].fd >= 0 || p[1].fd >= 0) {
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            char buf[4096];
            ssize_t r = read(p[i].fd, buf, sizeof buf);
            if (r <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                continue;
            }
            char *dst = i == 0 ? out : errs;
            size_t *len = i == 0 ? &n_out : &n_err;
            size_t keep = (size_t)r < OUTPUT_MAX - 1 - *len ? (size_t)r : OUTPUT_MAX - 1 - *len;
            memcpy(dst + *len, buf, keep);
            *len += keep;
            dst[*len] = '\0';
        }
    }
}

extern char **environ;

/* ksv's environment (the store's settings: AWS_*, HF_TOKEN...) with KSV_FETCH_URI=uri in
 * place of any it had; built before fork, as the child may only exec. NULL: no memory. */
static char **child_env(const char *uri)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof *env);
    size_t len = strlen(uri) + sizeof "KSV_FETCH_URI=";
    char *mine = env ? malloc(len) : NULL;
    if (!mine) {
        free(env);
        return NULL;
    }
    snprintf(mine, len, "KSV_FETCH_URI=%s", uri);
    size_t k = 0;
    env[k++] = mine;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "KSV_FETCH_URI=", 14) != 0)
            env[k++] = environ[i];
    return env;
}

static void free_env(char **env)
{
    if (env)
        explicit_bzero(env[0], strlen(env[0]));
    free(env ? env[0] : NULL);
    free(env);
}

int ctl_operator_fetch(ksv_ctl *ctl, const char *uri, const char *sha256, char *path, size_t cap,
                       ksv_err *err)
{
    char engine[PATH_MAX], dir[PATH_MAX];
    if (ctl->engine_path[0])
        snprintf(engine, sizeof engine, "%s", ctl->engine_path);
    else if (ksv_find_engine(engine, sizeof engine, ctl->argv0) != 0)
        return ksv_err_set(err, 503, "%s: ksv-engine not found to fetch it here (set "
                                     "KSV_ENGINE or install it beside ksv)", uri);
    cache_dir(dir, sizeof dir);
    if (ksv_mkdir_p(dir, 0700, err) != 0)
        return -1;
    /* The URI goes in the child's environment, not its command line: any local user can
     * read a command line (ps), only the owner an environment, and a presigned URL's
     * signature is a credential. */
    const char *argv[] = {engine, "--fetch", "-", "--state-dir", dir, "--log-level", "warn",
                          sha256 && *sha256 ? "--sha256" : NULL, sha256, NULL};
    char **envp = child_env(uri);
    if (!envp)
        return ksv_err_set(err, 500, "out of memory");
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0) {
        free_env(envp);
        return ksv_err_set(err, 500, "pipe: %s", strerror(errno));
    }
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
        close(out_pipe[0]), close(out_pipe[1]);
        free_env(envp);
        return ksv_err_set(err, 500, "pipe: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, 0) < 0 || dup2(out_pipe[1], 1) < 0 ||
            dup2(err_pipe[1], 2) < 0)
            _exit(127);
        execve(engine, (char *const *)argv, envp);
        _exit(127);
    }
    free_env(envp);
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (pid < 0) {
        close(out_pipe[0]), close(err_pipe[0]);
        return ksv_err_set(err, 500, "fork: %s", strerror(errno));
    }
    char *out = calloc(2, OUTPUT_MAX), *errs = out ? out + OUTPUT_MAX : NULL;
    if (!out) {
        close(out_pipe[0]), close(err_pipe[0]);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        return ksv_err_set(err, 500, "out of memory");
    }
    drain(out_pipe[0], err_pipe[0], out, errs);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    int rc = 0;
    out[strcspn(out, "\n")] = '\0';
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && out[0] == '/' &&
        strlen(out) < cap) {
        snprintf(path, cap, "%s", out);
    } else {
        /* The engine's own words: its last line, without the "ksv-engine: " lead. */
        size_t n = strlen(errs);
        while (n && errs[n - 1] == '\n')
            errs[--n] = '\0';
        const char *last = strrchr(errs, '\n') ? strrchr(errs, '\n') + 1 : errs;
        if (strncmp(last, "ksv-engine: ", 12) == 0)
            last += 12;
        rc = ksv_err_set(err, 502, "fetching on the operator's side (ksv.io/fetch: operator): "
                                   "%s", *last ? last : "ksv-engine --fetch failed");
    }
    free(out);
    return rc;
}
