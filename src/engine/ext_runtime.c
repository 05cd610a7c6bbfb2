/* ext_runtime.c: external serving runtimes as supervised child processes (ext_runtime.h).
 *
 * One monitor thread per runtime forks, reads the output pipe, probes health, and restarts.
 * Processes: engine -> watcher (new process group G, PR_SET_PDEATHSIG on the monitor
 * thread) -> runtime (in G). The watcher only waits: it forwards SIGTERM to the runtime,
 * mirrors its exit status, and kills all of G when the engine dies. */
#define _GNU_SOURCE
#include "engine/ext_runtime.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/sanitize.h"
#include "engine/runtime.h"

extern char **environ;

#define LINE_MAX_BYTES 400
#define BACKOFF_MIN_S 1.0
#define BACKOFF_MAX_S 60.0
#define DEFAULT_READY_TIMEOUT_S 120
#define DEFAULT_GRACE_S 10
#define HEALTH_INTERVAL_S 0.2

typedef enum { ST_STARTING, ST_READY, ST_BACKOFF, ST_FAILED, ST_STOPPED } ext_state;

static const char *state_name(ext_state s)
{
    static const char *n[] = {"starting", "ready", "restarting", "failed", "stopped"};
    return n[s];
}

/* The definition as parsed from the canonical JSON; strings are templates. */
typedef struct ext_def {
    char *argv[KSV_EXT_MAX_ARGS + 1];
    int argc;
    char *env_name[KSV_EXT_MAX_ENV];
    char *env_value[KSV_EXT_MAX_ENV];
    int n_env;
    unsigned protocols;
    char health_path[512];
    int ready_timeout_s;
    int grace_s;
} ext_def;

struct ksv_ext_runtime {
    ext_def def;
    char model[128], revision[128], model_path[PATH_MAX];
    int gpu;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;           /* guards what follows and the log ring */
    pthread_cond_t cond;
    ext_state state;
    bool stop, ever_ready;
    char failure[512];
    pid_t watcher;
    _Atomic int port;
    _Atomic uint64_t restarts;
    char lines[KSV_EXT_LOG_LINES][LINE_MAX_BYTES];
    int head, count;              /* ring: next slot, lines held */
    char partial[LINE_MAX_BYTES];
    size_t partial_len;
};


/* ------------------------------------------------------------------ the JSON block */

static int string_array(json_object *obj, const char *key, const char *where, bool required,
                        int max, json_object **out, ksv_err *err)
{
    json_object *v = NULL;
    *out = NULL;
    if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null)) {
        if (required)
            return ksv_err_set(err, 400, "%s.%s is required", where, key);
        return 0;
    }
    if (!json_object_is_type(v, json_type_array))
        return ksv_err_set(err, 400, "%s.%s: expected an array of strings", where, key);
    size_t n = json_object_array_length(v);
    if ((int)n > max)
        return ksv_err_set(err, 400, "%s.%s: more than %d entries", where, key, max);
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(v, i);
        if (!json_object_is_type(e, json_type_string))
            return ksv_err_set(err, 400, "%s.%s[%zu]: expected a string", where, key, i);
        if (memchr(json_object_get_string(e), '\0', (size_t)json_object_get_string_len(e)))
            return ksv_err_set(err, 400, "%s.%s[%zu]: contains a NUL byte", where, key, i);
    }
    *out = v;
    return 0;
}

static bool valid_env_name(const char *s)
{
    if (!*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

int ksv_ext_spec_from_json(json_object *ext, const char *where, char *out, size_t cap,
                           ksv_err *err)
{
    if (!json_object_is_type(ext, json_type_object))
        return ksv_err_set(err, 400, "%s: expected an object", where);
    json_object *command, *args, *protocols, *env = NULL, *v;
    if (string_array(ext, "command", where, true, KSV_EXT_MAX_ARGS, &command, err) ||
        string_array(ext, "args", where, false, KSV_EXT_MAX_ARGS, &args, err) ||
        string_array(ext, "protocols", where, false, 4, &protocols, err))
        return -1;
    size_t n_cmd = json_object_array_length(command), n_args = args ? json_object_array_length(args) : 0;
    if (n_cmd == 0 || json_object_get_string_len(json_object_array_get_idx(command, 0)) == 0)
        return ksv_err_set(err, 400, "%s.command: the runtime's command is missing", where);
    if (n_cmd + n_args > KSV_EXT_MAX_ARGS)
        return ksv_err_set(err, 400, "%s: more than %d command words and args", where,
                           KSV_EXT_MAX_ARGS);
    json_object *canon = json_object_new_object();
    if (!canon)
        return ksv_err_set(err, 500, "out of memory");
    json_object_object_add(canon, "command", json_object_get(command));
    json_object_object_add(canon, "args", args ? json_object_get(args) : json_object_new_array());
    json_object *protos = json_object_new_array();
    unsigned bits = 0;
    for (size_t i = 0; protocols && i < json_object_array_length(protocols); i++) {
        const char *p = json_object_get_string(json_object_array_get_idx(protocols, i));
        unsigned bit = strcmp(p, "v1") == 0       ? KSV_PROTO_V1
                       : strcmp(p, "v2") == 0     ? KSV_PROTO_V2
                       : strcmp(p, "openai") == 0 ? KSV_PROTO_OPENAI
                                                  : 0;
        if (!bit) {
            json_object_put(canon);
            json_object_put(protos);
            return ksv_err_set(err, 400, "%s.protocols: unknown protocol \"%s\" (v1, v2, openai)",
                               where, p);
        }
        if (!(bits & bit))
            json_object_array_add(protos, json_object_new_string(p));
        bits |= bit;
    }
    if (!bits)
        json_object_array_add(protos, json_object_new_string("v2"));
    json_object_object_add(canon, "protocols", protos);
    json_object *env_out = json_object_new_array();
    json_object_object_add(canon, "env", env_out);
    int rc = 0;
    if (json_object_object_get_ex(ext, "env", &env) && !json_object_is_type(env, json_type_null)) {
        if (!json_object_is_type(env, json_type_array) ||
            json_object_array_length(env) > KSV_EXT_MAX_ENV) {
            rc = ksv_err_set(err, 400, "%s.env: expected at most %d {\"name\",\"value\"} objects",
                             where, KSV_EXT_MAX_ENV);
        }
        for (size_t i = 0; rc == 0 && i < json_object_array_length(env); i++) {
            json_object *e = json_object_array_get_idx(env, i), *name, *value = NULL;
            if (!json_object_is_type(e, json_type_object) ||
                !json_object_object_get_ex(e, "name", &name) ||
                !json_object_is_type(name, json_type_string) ||
                !valid_env_name(json_object_get_string(name)) ||
                (json_object_object_get_ex(e, "value", &value) &&
                 !json_object_is_type(value, json_type_string) &&
                 !json_object_is_type(value, json_type_null))) {
                rc = ksv_err_set(err, 400, "%s.env[%zu]: expected {\"name\": NAME, \"value\": "
                                           "STRING} with NAME of [A-Za-z0-9_]",
                                 where, i);
                break;
            }
            json_object *pair = json_object_new_object();
            json_object_object_add(pair, "name", json_object_get(name));
            json_object_object_add(pair, "value",
                                   json_object_new_string(value && json_object_is_type(value, json_type_string)
                                                              ? json_object_get_string(value)
                                                              : ""));
            json_object_array_add(env_out, pair);
        }
    }
    const char *health = bits & KSV_PROTO_V2 ? "/v2/health/ready" : "/health";
    if (rc == 0 && json_object_object_get_ex(ext, "health_path", &v) &&
        !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_string) || json_object_get_string(v)[0] != '/' ||
            json_object_get_string_len(v) >= 256 || strpbrk(json_object_get_string(v), " \r\n"))
            rc = ksv_err_set(err, 400, "%s.health_path: expected a path starting with /", where);
        else
            health = json_object_get_string(v);
    }
    if (rc == 0)
        json_object_object_add(canon, "health_path", json_object_new_string(health));
    static const struct {
        const char *key;
        int def, lo, hi;
    } ints[] = {{"ready_timeout_s", DEFAULT_READY_TIMEOUT_S, 1, 3600},
                {"grace_s", DEFAULT_GRACE_S, 0, 600}};
    for (size_t i = 0; rc == 0 && i < sizeof ints / sizeof ints[0]; i++) {
        int64_t x = ints[i].def;
        if (json_object_object_get_ex(ext, ints[i].key, &v) && !json_object_is_type(v, json_type_null)) {
            if (!json_object_is_type(v, json_type_int))
                rc = ksv_err_set(err, 400, "%s.%s: expected an integer", where, ints[i].key);
            x = json_object_get_int64(v);
            if (rc == 0 && (x < ints[i].lo || x > ints[i].hi))
                rc = ksv_err_set(err, 400, "%s.%s: %lld is outside %d..%d", where, ints[i].key,
                                 (long long)x, ints[i].lo, ints[i].hi);
        }
        json_object_object_add(canon, ints[i].key, json_object_new_int64(x));
    }
    /* Free-form labels the control plane keeps with the revision: which ServingRuntime
     * and model format it came from. */
    static const char *labels[] = {"serving_runtime", "model_format"};
    for (size_t i = 0; rc == 0 && i < 2; i++) {
        if (!json_object_object_get_ex(ext, labels[i], &v) || json_object_is_type(v, json_type_null))
            continue;
        if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) > 128)
            rc = ksv_err_set(err, 400, "%s.%s: expected a short string", where, labels[i]);
        else
            json_object_object_add(canon, labels[i], json_object_get(v));
    }
    if (rc == 0) {
        const char *text = json_object_to_json_string_ext(canon, JSON_C_TO_STRING_PLAIN |
                                                                     JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text)
            rc = ksv_err_set(err, 500, "out of memory");
        else if (strlen(text) >= cap)
            rc = ksv_err_set(err, 400, "%s: longer than %zu bytes", where, cap - 1);
        else
            memcpy(out, text, strlen(text) + 1);
    }
    json_object_put(canon);
    return rc;
}

static json_object *parse_json(const char *text)
{
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return NULL;
    json_object *o = json_tokener_parse_ex(tok, text, (int)strlen(text));
    if (json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

unsigned ksv_ext_spec_protocols(const char *external_json)
{
    if (!external_json || !*external_json)
        return 0;
    json_object *o = parse_json(external_json), *p;
    unsigned bits = 0;
    if (o && json_object_object_get_ex(o, "protocols", &p) &&
        json_object_is_type(p, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(p); i++) {
            const char *s = json_object_get_string(json_object_array_get_idx(p, i));
            bits |= strcmp(s, "v1") == 0 ? KSV_PROTO_V1 : strcmp(s, "v2") == 0 ? KSV_PROTO_V2
                    : strcmp(s, "openai") == 0 ? KSV_PROTO_OPENAI : 0;
        }
    }
    json_object_put(o);
    return bits;
}

static void def_free(ext_def *d)
{
    for (int i = 0; i < d->argc; i++)
        free(d->argv[i]);
    for (int i = 0; i < d->n_env; i++) {
        free(d->env_name[i]);
        free(d->env_value[i]);
    }
    memset(d, 0, sizeof *d);
}

static int def_parse(const char *text, ext_def *d, ksv_err *err)
{
    memset(d, 0, sizeof *d);
    json_object *o = parse_json(text), *v;
    if (!o)
        return ksv_err_set(err, 500, "external runtime: the stored definition is not JSON");
    static const char *arrays[] = {"command", "args"};
    for (int a = 0; a < 2; a++) {
        if (!json_object_object_get_ex(o, arrays[a], &v) || !json_object_is_type(v, json_type_array))
            continue;
        for (size_t i = 0; i < json_object_array_length(v) && d->argc < KSV_EXT_MAX_ARGS; i++)
            d->argv[d->argc++] = strdup(json_object_get_string(json_object_array_get_idx(v, i)));
    }
    if (json_object_object_get_ex(o, "env", &v) && json_object_is_type(v, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(v) && d->n_env < KSV_EXT_MAX_ENV; i++) {
            json_object *e = json_object_array_get_idx(v, i), *n, *val;
            if (!json_object_object_get_ex(e, "name", &n) || !json_object_object_get_ex(e, "value", &val))
                continue;
            d->env_name[d->n_env] = strdup(json_object_get_string(n));
            d->env_value[d->n_env] = strdup(json_object_get_string(val));
            d->n_env++;
        }
    }
    d->protocols = ksv_ext_spec_protocols(text);
    snprintf(d->health_path, sizeof d->health_path, "%s",
             json_object_object_get_ex(o, "health_path", &v) ? json_object_get_string(v) : "/");
    d->ready_timeout_s = json_object_object_get_ex(o, "ready_timeout_s", &v)
                             ? json_object_get_int(v) : DEFAULT_READY_TIMEOUT_S;
    d->grace_s = json_object_object_get_ex(o, "grace_s", &v) ? json_object_get_int(v)
                                                               : DEFAULT_GRACE_S;
    json_object_put(o);
    bool oom = d->argc == 0;
    for (int i = 0; i < d->argc; i++)
        oom |= !d->argv[i];
    for (int i = 0; i < d->n_env; i++)
        oom |= !d->env_name[i] || !d->env_value[i];
    if (oom) {
        def_free(d);
        return ksv_err_set(err, 500, "external runtime: out of memory or no command");
    }
    return 0;
}

/* ---------------------------------------------------------------- substitutions */

/* Replaces /mnt/models, {{.Name}}, {{.Port}} and $PORT in tmpl; caller frees. */
static char *substitute(const char *tmpl, const ksv_ext_runtime *rt, int port)
{
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", port);
    const struct {
        const char *from, *to;
    } subs[] = {{"/mnt/models", rt->model_path},
                {"{{.Name}}", rt->model},
                {"{{.Port}}", port_text},
                {"$PORT", port_text}};
    ksv_sb sb;
    ksv_sb_init(&sb);
    for (const char *p = tmpl; *p;) {
        bool hit = false;
        for (size_t i = 0; i < sizeof subs / sizeof subs[0] && !hit; i++) {
            size_t n = strlen(subs[i].from);
            if (strncmp(p, subs[i].from, n) == 0) {
                ksv_sb_puts(&sb, subs[i].to);
                p += n;
                hit = true;
            }
        }
        if (!hit)
            ksv_sb_putc(&sb, *p++);
    }
    ksv_sb_putc(&sb, '\0');
    if (sb.oom) {
        ksv_sb_free(&sb);
        return NULL;
    }
    return sb.data;
}

int ksv_ext_runtimes_bin_dir(char *out, size_t cap)
{
    const char *venv = getenv("KSV_RUNTIMES_VENV");
    int n;
    if (venv && *venv) {
        n = snprintf(out, cap, "%s/bin", venv);
    } else {
        const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
        if (cache && *cache)
            n = snprintf(out, cap, "%s/ksv/venv-runtimes/bin", cache);
        else if (home && *home)
            n = snprintf(out, cap, "%s/.cache/ksv/venv-runtimes/bin", home);
        else
            return -1;
    }
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

static bool executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Finds cmd: as given when it has a '/', else in the runtimes venv, then in PATH. */
static int find_command(const char *cmd, char *out, size_t cap, ksv_err *err)
{
    if (strchr(cmd, '/')) {
        if (!executable(cmd))
            return ksv_err_set(err, 400, "runtime command %s is missing or not executable", cmd);
        snprintf(out, cap, "%s", cmd);
        return 0;
    }
    char venv_bin[PATH_MAX] = "";
    if (ksv_ext_runtimes_bin_dir(venv_bin, sizeof venv_bin) == 0) {
        snprintf(out, cap, "%s/%s", venv_bin, cmd);
        if (executable(out))
            return 0;
    }
    const char *path = getenv("PATH");
    for (const char *p = path ? path : ""; *p;) {
        const char *colon = strchr(p, ':');
        size_t n = colon ? (size_t)(colon - p) : strlen(p);
        if (n > 0 && (size_t)snprintf(out, cap, "%.*s/%s", (int)n, p, cmd) < cap && executable(out))
            return 0;
        p += n + (colon ? 1 : 0);
    }
    return ksv_err_set(err, 400,
                       "runtime command \"%s\" not found (looked in %s and PATH; "
                       "scripts/runtimes.sh install puts the shipped runtimes there)",
                       cmd, venv_bin[0] ? venv_bin : "the runtimes venv");
}

/* A free loopback port: bound with port 0, read back, released. The runtime binds it a
 * moment later; a lost race makes it exit, and the restart picks another. */
static int pick_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* ------------------------------------------------------------------- the log ring */

static void push_line_locked(ksv_ext_runtime *rt, const char *s, size_t n)
{
    char raw[LINE_MAX_BYTES];
    if (n >= sizeof raw)
        n = sizeof raw - 1;
    memcpy(raw, s, n);
    raw[n] = '\0';
    /* The one terminal filter: the line is safe in JSON, on a terminal and in a log. */
    ksv_sanitize_copy(rt->lines[rt->head], LINE_MAX_BYTES, raw);
    rt->head = (rt->head + 1) % KSV_EXT_LOG_LINES;
    if (rt->count < KSV_EXT_LOG_LINES)
        rt->count++;
}

static void take_output(ksv_ext_runtime *rt, const char *buf, size_t n)
{
    pthread_mutex_lock(&rt->mu);
    for (size_t i = 0; i < n; i++) {
        char c = buf[i];
        if (c == '\n' || rt->partial_len == sizeof rt->partial - 1) {
            size_t len = rt->partial_len;
            if (len && rt->partial[len - 1] == '\r')
                len--;
            push_line_locked(rt, rt->partial, len);
            rt->partial_len = 0;
            if (c == '\n')
                continue;
        }
        rt->partial[rt->partial_len++] = c;
    }
    pthread_mutex_unlock(&rt->mu);
}

static void note(ksv_ext_runtime *rt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(ksv_ext_runtime *rt, const char *fmt, ...)
{
    char line[LINE_MAX_BYTES];
    int k = snprintf(line, sizeof line, "[ksv] ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + k, sizeof line - (size_t)k, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&rt->mu);
    push_line_locked(rt, line, strlen(line));
    pthread_mutex_unlock(&rt->mu);
    ksv_log(KSV_LOG_INFO, NULL, "runtime %s: %s", rt->revision, line + k);
}

void ksv_ext_tail(ksv_ext_runtime *rt, int n, char *out, size_t cap)
{
    pthread_mutex_lock(&rt->mu);
    int take = n < rt->count ? n : rt->count;
    size_t o = 0;
    out[0] = '\0';
    for (int k = take; k > 0 && o + 1 < cap; k--) {
        const char *l = rt->lines[(rt->head + KSV_EXT_LOG_LINES - k) % KSV_EXT_LOG_LINES];
        int w = snprintf(out + o, cap - o, "%s%s", o ? "\n" : "", l);
        if (w < 0)
            break;
        o += (size_t)w < cap - o ? (size_t)w : cap - o - 1;
    }
    pthread_mutex_unlock(&rt->mu);
}

void ksv_ext_write_logs(ksv_ext_runtime *rt, ksv_sb *sb)
{
    pthread_mutex_lock(&rt->mu);
    ksv_sb_puts(sb, "{\"lines\":[");
    for (int k = rt->count; k > 0; k--) {
        if (k != rt->count)
            ksv_sb_putc(sb, ',');
        ksv_sb_json_str(sb, rt->lines[(rt->head + KSV_EXT_LOG_LINES - k) % KSV_EXT_LOG_LINES]);
    }
    ksv_sb_printf(sb, "],\"state\":\"%s\",\"restarts\":%llu,\"port\":%d,\"pid\":%d}",
                  state_name(rt->state), (unsigned long long)atomic_load(&rt->restarts),
                  atomic_load(&rt->port), (int)rt->watcher);
    pthread_mutex_unlock(&rt->mu);
}

/* ------------------------------------------------------------------ process control */

/* The watcher: runs in the forked child (only async-signal-safe calls from here on). */
static void __attribute__((noreturn))
watcher_main(pid_t engine, int out_fd, const char *exec_path, char *const argv[],
             char *const envp[])
{
    setpgid(0, 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_SETMASK, &set, NULL);
    prctl(PR_SET_PDEATHSIG, SIGUSR1);
    if (getppid() != engine)
        _exit(120); /* the engine is already gone */
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
        dup2(devnull, 0);
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    pid_t child = fork();
    if (child < 0)
        _exit(121);
    if (child == 0) {
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        for (int s = 1; s < NSIG; s++)
            if (s != SIGKILL && s != SIGSTOP)
                sigaction(s, &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (close_range(3, ~0U, 0) != 0)
            for (int fd = 3; fd < 4096; fd++)
                close(fd);
        execve(exec_path, argv, envp);
        static const char msg[] = "[ksv] exec of the runtime command failed\n";
        ssize_t ignored = write(2, msg, sizeof msg - 1);
        (void)ignored;
        _exit(127);
    }
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&set, &info);
        if (sig == SIGCHLD) {
            int status;
            pid_t r = waitpid(child, &status, WNOHANG);
            if (r == child)
                _exit(WIFEXITED(status) ? WEXITSTATUS(status)
                                        : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1);
        } else if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
            kill(child, SIGTERM);
        } else if (sig == SIGUSR1) {
            kill(0, SIGKILL); /* the engine died: the whole group goes, this one too */
        }
    }
}

typedef struct spawn_args {
    char exec_path[PATH_MAX];
    char *argv[KSV_EXT_MAX_ARGS + 1];
    char **envp;
    size_t n_envp;
} spawn_args;

static void spawn_args_free(spawn_args *a)
{
    for (int i = 0; a->argv[i]; i++)
        free(a->argv[i]);
    for (size_t i = 0; i < a->n_envp; i++)
        free(a->envp[i]);
    free(a->envp);
    memset(a, 0, sizeof *a);
}

static bool env_overridden(const ksv_ext_runtime *rt, const char *entry)
{
    /* PORT and CUDA_VISIBLE_DEVICES are set below; OMP_WAIT_POLICY is left out when the
     * engine set it for itself (main.c), with its marker. */
    static const char *ours[] = {"PORT", "CUDA_VISIBLE_DEVICES", "OMP_WAIT_POLICY",
                                 KSV_ENGINE_OMP_MARKER};
    size_t n = strcspn(entry, "="), n_ours = getenv(KSV_ENGINE_OMP_MARKER) ? 4 : 2;
    for (size_t i = 0; i < n_ours; i++)
        if (strlen(ours[i]) == n && strncmp(entry, ours[i], n) == 0)
            return true;
    for (int i = 0; i < rt->def.n_env; i++)
        if (strlen(rt->def.env_name[i]) == n && strncmp(entry, rt->def.env_name[i], n) == 0)
            return true;
    return false;
}

static int spawn_args_build(ksv_ext_runtime *rt, int port, spawn_args *a, ksv_err *err)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < rt->def.argc; i++)
        if (!(a->argv[i] = substitute(rt->def.argv[i], rt, port))) {
            spawn_args_free(a);
            return ksv_err_set(err, 500, "out of memory");
        }
    if (find_command(a->argv[0], a->exec_path, sizeof a->exec_path, err) != 0) {
        spawn_args_free(a);
        return -1;
    }
    size_t n_environ = 0;
    while (environ && environ[n_environ])
        n_environ++;
    a->envp = calloc(n_environ + (size_t)rt->def.n_env + 3, sizeof *a->envp);
    if (!a->envp) {
        spawn_args_free(a);
        return ksv_err_set(err, 500, "out of memory");
    }
    bool oom = false;
    for (size_t i = 0; i < n_environ; i++)
        if (!env_overridden(rt, environ[i]))
            oom |= !(a->envp[a->n_envp++] = strdup(environ[i]));
    for (int i = 0; i < rt->def.n_env; i++) {
        char *value = substitute(rt->def.env_value[i], rt, port);
        size_t len = strlen(rt->def.env_name[i]) + (value ? strlen(value) : 0) + 2;
        char *e = value ? malloc(len) : NULL;
        if (e)
            snprintf(e, len, "%s=%s", rt->def.env_name[i], value);
        free(value);
        oom |= !(a->envp[a->n_envp++] = e);
    }
    char buf[64];
    snprintf(buf, sizeof buf, "PORT=%d", port);
    oom |= !(a->envp[a->n_envp++] = strdup(buf));
    if (rt->gpu >= 0)
        snprintf(buf, sizeof buf, "CUDA_VISIBLE_DEVICES=%d", rt->gpu);
    else
        snprintf(buf, sizeof buf, "CUDA_VISIBLE_DEVICES=");
    oom |= !(a->envp[a->n_envp++] = strdup(buf));
    if (oom) {
        spawn_args_free(a);
        return ksv_err_set(err, 500, "out of memory");
    }
    return 0;
}

/* GET path on 127.0.0.1:port with a short deadline; true on a 200 answer. */
static bool health_ok(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = false;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    if ((connect(fd, (struct sockaddr *)&a, sizeof a) == 0 || errno == EINPROGRESS) &&
        poll(&p, 1, 1000) == 1 && !(p.revents & (POLLERR | POLLHUP))) {
        char req[600];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n\r\n", path,
                         port);
        char resp[64];
        size_t got = 0;
        if (send(fd, req, (size_t)n, MSG_NOSIGNAL) == n) {
            double deadline = ksv_mono_s() + 2.0;
            p.events = POLLIN;
            while (got < 12 && ksv_mono_s() < deadline && poll(&p, 1, 200) >= 0) {
                if (!(p.revents & POLLIN))
                    continue;
                ssize_t r = recv(fd, resp + got, sizeof resp - 1 - got, 0);
                if (r <= 0)
                    break;
                got += (size_t)r;
            }
        }
        resp[got] = '\0';
        ok = got >= 12 && strncmp(resp, "HTTP/1.", 7) == 0 && strncmp(resp + 9, "200", 3) == 0;
    }
    close(fd);
    return ok;
}

static void drain_pipe(ksv_ext_runtime *rt, int fd)
{
    char buf[4096];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r > 0) {
            take_output(rt, buf, (size_t)r);
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        break;
    }
}

/* Ends the process group of watcher w: SIGTERM (forwarded by the watcher to the runtime),
 * SIGKILL to the group after grace_s, then reaps the watcher. Returns its exit status. */
static int terminate_group(ksv_ext_runtime *rt, pid_t w, int out_fd, double grace_s)
{
    int status = 0;
    kill(w, SIGTERM);
    double deadline = ksv_mono_s() + grace_s;
    pid_t r = 0;
    while ((r = waitpid(w, &status, WNOHANG)) == 0 && ksv_mono_s() < deadline) {
        struct pollfd p = {.fd = out_fd, .events = POLLIN};
        if (poll(&p, 1, 50) > 0)
            drain_pipe(rt, out_fd);
    }
    if (r == 0) {
        note(rt, "no exit %.0f s after SIGTERM: SIGKILL", grace_s);
        killpg(w, SIGKILL);
        waitpid(w, &status, 0);
    }
    killpg(w, SIGKILL); /* anything the runtime left behind in its group */
    drain_pipe(rt, out_fd);
    return status;
}

static bool stop_requested(ksv_ext_runtime *rt)
{
    pthread_mutex_lock(&rt->mu);
    bool s = rt->stop;
    pthread_mutex_unlock(&rt->mu);
    return s;
}

static void fail(ksv_ext_runtime *rt, const char *msg)
{
    pthread_mutex_lock(&rt->mu);
    snprintf(rt->failure, sizeof rt->failure, "%s", msg);
    rt->state = ST_FAILED;
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->mu);
}

/* One run of the process: spawn, wait for ready, serve until exit or stop.
 * Returns true when it should be restarted. */
static bool run_once(ksv_ext_runtime *rt)
{
    ksv_err err;
    int port = pick_port();
    spawn_args a;
    if (port == 0 || spawn_args_build(rt, port, &a, &err) != 0) {
        if (port == 0)
            ksv_err_set(&err, 503, "no free loopback port");
        note(rt, "%s", err.msg);
        fail(rt, err.msg);
        return false;
    }
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        spawn_args_free(&a);
        fail(rt, "cannot create the output pipe");
        return false;
    }
    note(rt, "starting %s on port %d", a.exec_path, port);
    pid_t engine = getpid();
    pid_t w = fork();
    if (w == 0)
        watcher_main(engine, pipefd[1], a.exec_path, a.argv, a.envp);
    close(pipefd[1]);
    spawn_args_free(&a);
    if (w < 0) {
        close(pipefd[0]);
        fail(rt, "fork failed");
        return false;
    }
    setpgid(w, w); /* also done by the child: whichever runs first */
    fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    pthread_mutex_lock(&rt->mu);
    rt->watcher = w;
    pthread_mutex_unlock(&rt->mu);

    char *health_path = substitute(rt->def.health_path, rt, port);
    bool ready = false, restart = false;
    double started = ksv_mono_s(), next_probe = started;
    int status = 0;
    for (;;) {
        struct pollfd p = {.fd = pipefd[0], .events = POLLIN};
        if (poll(&p, 1, 100) > 0)
            drain_pipe(rt, pipefd[0]);
        if (stop_requested(rt)) {
            atomic_store(&rt->port, 0);
            terminate_group(rt, w, pipefd[0], rt->def.grace_s);
            note(rt, "stopped");
            break;
        }
        pid_t r = waitpid(w, &status, WNOHANG);
        if (r == w) {
            atomic_store(&rt->port, 0);
            killpg(w, SIGKILL);
            drain_pipe(rt, pipefd[0]);
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            if (code == 127)
                note(rt, "the runtime command could not be run");
            char msg[200];
            snprintf(msg, sizeof msg, "runtime exited with status %d%s", code,
                     ready ? "" : " before it became ready");
            note(rt, "%s", msg);
            if (!rt->ever_ready) {
                fail(rt, msg);
            } else {
                restart = true;
            }
            break;
        }
        double now = ksv_mono_s();
        if (!ready && now >= next_probe) {
            next_probe = now + HEALTH_INTERVAL_S;
            if (health_ok(port, health_path ? health_path : rt->def.health_path)) {
                ready = true;
                atomic_store(&rt->port, port);
                note(rt, "ready after %.1f s (GET %s answered 200)", now - started,
                     rt->def.health_path);
                pthread_mutex_lock(&rt->mu);
                rt->ever_ready = true;
                rt->state = ST_READY;
                pthread_cond_broadcast(&rt->cond);
                pthread_mutex_unlock(&rt->mu);
            } else if (now - started > rt->def.ready_timeout_s) {
                char msg[400];
                snprintf(msg, sizeof msg, "not ready after %d s (GET %.256s never answered 200)",
                         rt->def.ready_timeout_s, rt->def.health_path);
                note(rt, "%s", msg);
                terminate_group(rt, w, pipefd[0], rt->def.grace_s);
                if (!rt->ever_ready)
                    fail(rt, msg);
                else
                    restart = true;
                break;
            }
        }
    }
    close(pipefd[0]);
    free(health_path);
    pthread_mutex_lock(&rt->mu);
    rt->watcher = 0;
    pthread_mutex_unlock(&rt->mu);
    return restart;
}

static void *monitor_main(void *arg)
{
    ksv_ext_runtime *rt = arg;
    double backoff = BACKOFF_MIN_S;
    for (;;) {
        double began = ksv_mono_s();
        if (!run_once(rt))
            break;
        /* A runtime that served for a while before crashing starts over at 1 s. */
        if (ksv_mono_s() - began > BACKOFF_MAX_S)
            backoff = BACKOFF_MIN_S;
        atomic_fetch_add(&rt->restarts, 1);
        note(rt, "restarting in %.0f s", backoff);
        pthread_mutex_lock(&rt->mu);
        rt->state = ST_BACKOFF;
        struct timespec until = ksv_timespec_in(CLOCK_REALTIME, backoff);
        while (!rt->stop && pthread_cond_timedwait(&rt->cond, &rt->mu, &until) == 0)
            ;
        bool stop = rt->stop;
        if (!stop)
            rt->state = ST_STARTING;
        pthread_mutex_unlock(&rt->mu);
        if (stop)
            break;
        backoff = backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : backoff * 2;
    }
    pthread_mutex_lock(&rt->mu);
    if (rt->state != ST_FAILED)
        rt->state = ST_STOPPED;
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->mu);
    return NULL;
}

/* ---------------------------------------------------------------------- public API */

int ksv_ext_start(const ksv_ext_launch *l, ksv_ext_runtime **out, ksv_err *err)
{
    ksv_ext_runtime *rt = calloc(1, sizeof *rt);
    if (!rt)
        return ksv_err_set(err, 500, "out of memory");
    if (def_parse(l->external_json, &rt->def, err) != 0) {
        free(rt);
        return -1;
    }
    snprintf(rt->model, sizeof rt->model, "%s", l->model);
    snprintf(rt->revision, sizeof rt->revision, "%s", l->revision);
    snprintf(rt->model_path, sizeof rt->model_path, "%s", l->model_path);
    rt->gpu = l->gpu;
    pthread_mutex_init(&rt->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&rt->cond, &ca);
    pthread_condattr_destroy(&ca);
    rt->state = ST_STARTING;
    /* Fail early, with a clear message, when the command does not exist. */
    spawn_args probe;
    if (spawn_args_build(rt, 0, &probe, err) != 0) {
        ksv_ext_stop(rt);
        return -1;
    }
    spawn_args_free(&probe);
    if (pthread_create(&rt->thread, NULL, monitor_main, rt) != 0) {
        ksv_ext_stop(rt);
        return ksv_err_set(err, 500, "cannot start the runtime's monitor thread");
    }
    rt->thread_started = true;
    pthread_mutex_lock(&rt->mu);
    while (rt->state == ST_STARTING)
        pthread_cond_wait(&rt->cond, &rt->mu);
    bool ok = rt->state == ST_READY;
    char failure[200];
    snprintf(failure, sizeof failure, "%.199s", rt->failure);
    pthread_mutex_unlock(&rt->mu);
    if (!ok) {
        char tail[260];
        ksv_ext_tail(rt, 6, tail, sizeof tail);
        ksv_err_set(err, 500, "runtime %.60s: %.150s; last output:\n%.260s", rt->def.argv[0],
                    failure[0] ? failure : "stopped", tail);
        ksv_ext_stop(rt);
        return -1;
    }
    *out = rt;
    return 0;
}

void ksv_ext_stop(ksv_ext_runtime *rt)
{
    if (!rt)
        return;
    pthread_mutex_lock(&rt->mu);
    rt->stop = true;
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->mu);
    if (rt->thread_started)
        pthread_join(rt->thread, NULL);
    def_free(&rt->def);
    pthread_mutex_destroy(&rt->mu);
    pthread_cond_destroy(&rt->cond);
    free(rt);
}

int ksv_ext_port(ksv_ext_runtime *rt)
{
    return atomic_load(&rt->port);
}

unsigned ksv_ext_protocols(const ksv_ext_runtime *rt)
{
    return rt->def.protocols;
}

uint64_t ksv_ext_restarts(ksv_ext_runtime *rt)
{
    return atomic_load(&rt->restarts);
}

/* ------------------------------------------------------- as an engine runtime ("external") */

static int external_load(const char *path, const ksv_runtime_options *opts, void **model,
                         ksv_model_info *info, ksv_err *err)
{
    if (!opts->external || !*opts->external)
        return ksv_err_set(err, 400, "runtime external needs the revision's \"external\" block");
    ksv_ext_launch l = {.model = opts->model_name ? opts->model_name : "",
                        .revision = opts->revision ? opts->revision : "",
                        .model_path = path,
                        .external_json = opts->external,
                        .gpu = opts->gpu};
    ksv_ext_runtime *rt;
    if (ksv_ext_start(&l, &rt, err) != 0)
        return -1;
    memset(info, 0, sizeof *info);
    snprintf(info->objective, sizeof info->objective, "external");
    *model = rt;
    return 0;
}

static void external_unload(void *model)
{
    ksv_ext_stop(model);
}

static int external_predict(void *model, unsigned worker, const float *x, size_t rows,
                            size_t cols, float *out, ksv_err *err)
{
    (void)model, (void)worker, (void)x, (void)rows, (void)cols, (void)out;
    return ksv_err_set(err, 500, "an external runtime's requests are forwarded, not predicted");
}

const ksv_runtime_ops ksv_runtime_external = {
    .name = "external",
    .proxied = true,
    .load = external_load,
    .unload = external_unload,
    .predict = external_predict,
};

int ksv_ext_fetched_path(const char *folder, char *out, size_t cap, ksv_err *err)
{
    DIR *d = opendir(folder);
    if (!d)
        return ksv_err_set(err, 500, "model cache folder %s: %s", folder, strerror(errno));
    char only[256] = "";
    int entries = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && entries < 2) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (entries++ == 0)
            snprintf(only, sizeof only, "%s", de->d_name);
    }
    closedir(d);
    struct stat st;
    int n = entries == 1 ? snprintf(out, cap, "%s/%s", folder, only) : -1;
    if (n >= 0 && (size_t)n < cap && stat(out, &st) == 0 && S_ISREG(st.st_mode))
        return 0;
    if ((size_t)snprintf(out, cap, "%s", folder) >= cap)
        return ksv_err_set(err, 400, "model cache folder %s: path too long", folder);
    return 0;
}

int ksv_ext_model_path(const char *uri, char *out, size_t cap, ksv_err *err)
{
    const char *p = strncmp(uri, "file://", 7) == 0 ? uri + 7 : uri;
    if (p[0] != '/')
        return ksv_err_set(err, 400,
                           "storage %s: an external runtime takes a local path (file:///abs or "
                           "/abs)", uri);
    char real[PATH_MAX];
    if (!realpath(p, real))
        return ksv_err_set(err, 404, "storage %s: %s", uri, strerror(errno));
    if ((size_t)snprintf(out, cap, "%s", real) >= cap)
        return ksv_err_set(err, 400, "storage %s: path too long", uri);
    return 0;
}
