/* local_node.c: attaching to, starting and stopping a ksv-engine on this machine through
 * its state dir's lock, address and token files (see local_node.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2, close_range */
#endif
#include "common/clock.h"
#include "remote/local_node.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/fileutil.h"
#include "remote/engine_client.h"

/* --- small helpers ------------------------------------------------------------------------ */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int state_path(char *out, size_t cap, const char *dir, const char *name, ksv_err *err)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return ksv_err_set(err, 400, "state dir path too long: %s", dir);
    return 0;
}

typedef enum { LOCK_FREE, LOCK_HELD, LOCK_UNKNOWN } lock_probe;

/* Tries the engine's lock without waiting. LOCK_FREE leaves it held on *fd_out (the caller
 * closes it to release); otherwise *fd_out is -1. */
static lock_probe probe_lock(const char *dir, int *fd_out)
{
    char path[PATH_MAX];
    *fd_out = -1;
    if (state_path(path, sizeof path, dir, "lock", NULL) != 0)
        return LOCK_UNKNOWN;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? LOCK_FREE : LOCK_UNKNOWN;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        *fd_out = fd;
        return LOCK_FREE;
    }
    int e = errno;
    close(fd);
    return e == EWOULDBLOCK ? LOCK_HELD : LOCK_UNKNOWN;
}

bool ksv_local_engine_running(const char *state_dir)
{
    int fd;
    lock_probe p = probe_lock(state_dir, &fd);
    if (fd >= 0)
        close(fd);
    return p == LOCK_HELD;
}

/* The pid the engine wrote into its lock file; 0 when unreadable. */
static pid_t read_lock_pid(const char *dir)
{
    char path[PATH_MAX], *text = NULL;
    if (state_path(path, sizeof path, dir, "lock", NULL) != 0 ||
        ksv_read_file(path, 64, &text, NULL, NULL) != 0)
        return 0;
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    bool ok = errno == 0 && end != text && v > 1 && v <= INT_MAX;
    free(text);
    return ok ? (pid_t)v : 0;
}

/* Reads STATE_DIR/address ("HOST:PORT") into a base URL. A wildcard bind is reached on
 * the matching loopback. 404 while the file does not exist yet. */
static int read_address(const char *dir, char *url, size_t cap, char *listen,
                        size_t listen_cap, ksv_err *err)
{
    char path[PATH_MAX], *text = NULL;
    if (state_path(path, sizeof path, dir, "address", err) != 0 ||
        ksv_read_file(path, 256, &text, NULL, err) != 0)
        return -1;
    size_t n = strcspn(text, "\r\n");
    text[n] = '\0';
    bool ok = n > 0 && strspn(text, "0123456789abcdefABCDEF.:[]") == n && strrchr(text, ':');
    const char *port = ok ? strrchr(text, ':') + 1 : "";
    ok = ok && *port && strspn(port, "0123456789") == strlen(port) && atoi(port) > 0 &&
         atoi(port) < 65536;
    int rc = 0;
    if (!ok) {
        rc = ksv_err_set(err, 500, "%s: \"%.64s\" is not HOST:PORT", path, text);
    } else {
        const char *host = text;
        int host_len = (int)(port - 1 - text);
        if (strncmp(text, "0.0.0.0:", 8) == 0)
            host = "127.0.0.1", host_len = 9;
        else if (strncmp(text, "[::]:", 5) == 0)
            host = "[::1]", host_len = 5;
        snprintf(listen, listen_cap, "%s", text);
        int w = snprintf(url, cap, "http://%.*s:%s", host_len, host, port);
        if (w < 0 || (size_t)w >= cap)
            rc = ksv_err_set(err, 500, "%s: address too long", path);
    }
    free(text);
    return rc;
}

static int read_token(const char *dir, char *token, size_t cap, ksv_err *err)
{
    char path[PATH_MAX], *text = NULL;
    if (state_path(path, sizeof path, dir, "token", err) != 0)
        return -1;
    ksv_err rerr;
    if (ksv_read_file(path, 4096, &text, NULL, &rerr) != 0)
        return ksv_err_set(err, rerr.status == 404 ? 500 : rerr.status,
                           "cannot read the engine's token: %s (an engine started with "
                           "--token-file keeps it elsewhere)", rerr.msg);
    size_t n = strcspn(text, " \t\r\n");
    int rc = 0;
    if (n == 0 || n >= cap)
        rc = ksv_err_set(err, 500, "%s: the token is empty or too long", path);
    else
        memcpy(token, text, n), token[n] = '\0';
    explicit_bzero(text, strlen(text));
    free(text);
    return rc;
}

/* The last two lines of STATE_DIR/engine.log joined by " | ", for a failure message:
 * an engine that refuses its arguments says why on the line before its last. */
static void last_log_lines(const char *dir, char *out, size_t cap)
{
    char path[PATH_MAX];
    out[0] = '\0';
    if (state_path(path, sizeof path, dir, "engine.log", NULL) != 0)
        return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[1024];
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof buf - 1 ? size - (off_t)sizeof buf + 1 : 0;
    ssize_t n = size > 0 ? pread(fd, buf, sizeof buf - 1, from) : 0;
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    const char *start = buf;
    int newlines = 0;
    for (ssize_t i = n - 1; i >= 0; i--) {
        if (buf[i] == '\n' && ++newlines == 2) {
            start = buf + i + 1;
            break;
        }
    }
    size_t used = 0;
    for (const char *p = start; *p && used + 4 < cap; p++) {
        if (*p == '\n') {
            memcpy(out + used, " | ", 3);
            used += 3;
        } else if (*p != '\r') {
            out[used++] = *p;
        }
    }
    out[used] = '\0';
}

/* True while pid names a live process that is not a zombie waiting to be reaped. */
static bool process_alive(pid_t pid)
{
    if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH))
        return false;
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true; /* no /proc: kill() said it exists */
    ssize_t n = read(fd, stat, sizeof stat - 1);
    close(fd);
    if (n <= 0)
        return false;
    stat[n] = '\0';
    const char *paren = strrchr(stat, ')'); /* the command name may hold spaces */
    return !(paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'));
}

/* One attempt at attaching: address readable, health answering, token readable.
 * -1: not yet (worth retrying); -2: the engine answers but its token cannot be read, which
 * waiting will not change. */
static int try_attach(const char *dir, ksv_local_engine *out, ksv_err *err)
{
    ksv_engine_client *c = NULL;
    if (read_address(dir, out->base_url, sizeof out->base_url, out->listen,
                     sizeof out->listen, err) != 0 ||
        ksv_engine_client_new(out->base_url, NULL, 1000, &c, err) != 0)
        return -1;
    int rc = ksv_engine_client_health(c, err);
    ksv_engine_client_free(c);
    if (rc != 0)
        return -1;
    if (read_token(dir, out->token, sizeof out->token, err) != 0)
        return -2;
    out->pid = read_lock_pid(dir);
    if (out->pid <= 0)
        return ksv_err_set(err, 500, "%s/lock holds no pid", dir);
    return 0;
}

int ksv_local_engine_attach(const char *state_dir, long timeout_ms, ksv_local_engine *out,
                            ksv_err *err)
{
    memset(out, 0, sizeof *out);
    double deadline = ksv_mono_ms() + (double)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        if (!ksv_local_engine_running(state_dir))
            return ksv_err_set(err, 404, "no ksv-engine runs on state dir %s", state_dir);
        ksv_err why;
        int rc = try_attach(state_dir, out, &why);
        if (rc == 0)
            return 0;
        if (rc == -2) {
            if (err)
                *err = why;
            return -1;
        }
        if (ksv_mono_ms() >= deadline) {
            memset(out->token, 0, sizeof out->token);
            return ksv_err_set(err, 503, "the ksv-engine on %s does not answer: %s",
                               state_dir, why.msg);
        }
        sleep_ms(50);
    }
}

/* --- launching ---------------------------------------------------------------------------- */

/* Messages from the forked children through a close-on-exec pipe: the engine's pid from
 * the intermediate child, or an errno when fork or exec failed. Each fits PIPE_BUF, so
 * writes from the two children never interleave. */
typedef struct spawn_msg {
    char kind; /* 'P' pid, 'F' fork failed, 'E' exec failed */
    int value;
} spawn_msg;

static void write_msg(int fd, char kind, int value)
{
    spawn_msg m = {kind, value};
    ssize_t n;
    do
        n = write(fd, &m, sizeof m);
    while (n < 0 && errno == EINTR);
}

/* Runs in the grandchild between fork and exec: only async-signal-safe calls. */
static void exec_engine(const char *path, char *const argv[], int devnull, int logfd,
                        int report_fd, int max_fd)
{
    if (dup2(devnull, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0) {
        write_msg(report_fd, 'E', errno);
        _exit(127);
    }
    /* Descriptors the caller left inheritable (sockets, pipes) must not live on in a
     * daemon; report_fd is already close-on-exec. */
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
        for (int fd = 3; fd < max_fd; fd++)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (chdir("/") != 0) {
        write_msg(report_fd, 'E', errno);
        _exit(127);
    }
    execv(path, argv);
    write_msg(report_fd, 'E', errno);
    _exit(127);
}

/* Double fork: the engine is re-parented away from us (it outlives ksv and we never have
 * to reap it), and setsid() detaches it from our terminal's signals. */
static int spawn_detached(const char *path, char *const argv[], const char *log_path,
                          pid_t *pid_out, ksv_err *err)
{
    int pfd[2] = {-1, -1}, devnull = -1, logfd = -1, rc = -1;
    long open_max = sysconf(_SC_OPEN_MAX);
    int max_fd = open_max > 0 && open_max < 65536 ? (int)open_max : 65536;
    if (pipe2(pfd, O_CLOEXEC) != 0 ||
        (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 ||
        (logfd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        ksv_err_set(err, 500, "starting ksv-engine: %s", strerror(errno));
        goto done;
    }
    pid_t mid = fork();
    if (mid < 0) {
        ksv_err_set(err, 500, "fork: %s", strerror(errno));
        goto done;
    }
    if (mid == 0) {
        setsid();
        pid_t engine = fork();
        if (engine == 0)
            exec_engine(path, argv, devnull, logfd, pfd[1], max_fd);
        if (engine < 0)
            write_msg(pfd[1], 'F', errno);
        else
            write_msg(pfd[1], 'P', (int)engine);
        _exit(0);
    }
    close(pfd[1]);
    pfd[1] = -1;
    int status;
    while (waitpid(mid, &status, 0) < 0 && errno == EINTR)
        ;
    /* Read until every writer is gone: the intermediate child exited, and the engine
     * either exec'd (closing its end) or reported why it could not. */
    pid_t engine = 0;
    int exec_errno = 0, fork_errno = 0;
    for (;;) {
        spawn_msg m;
        ssize_t n = read(pfd[0], &m, sizeof m);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof m)
            break;
        if (m.kind == 'P')
            engine = (pid_t)m.value;
        else if (m.kind == 'E')
            exec_errno = m.value;
        else if (m.kind == 'F')
            fork_errno = m.value;
    }
    if (fork_errno)
        ksv_err_set(err, 500, "fork: %s", strerror(fork_errno));
    else if (exec_errno)
        ksv_err_set(err, 500, "cannot run %s: %s", path, strerror(exec_errno));
    else if (engine <= 0)
        ksv_err_set(err, 500, "starting %s: the launcher did not report a pid", path);
    else {
        *pid_out = engine;
        rc = 0;
    }
done:
    for (int i = 0; i < 2; i++)
        if (pfd[i] >= 0)
            close(pfd[i]);
    if (devnull >= 0)
        close(devnull);
    if (logfd >= 0)
        close(logfd);
    return rc;
}

/* argv for the engine: PATH --listen 127.0.0.1:0 --state-dir DIR EXTRA... NULL. */
static char **build_argv(const char *path, const char *dir, const char *const *extra)
{
    size_t n_extra = 0;
    while (extra && extra[n_extra])
        n_extra++;
    char **argv = calloc(n_extra + 6, sizeof *argv);
    if (!argv)
        return NULL;
    const char *fixed[] = {path, "--listen", "127.0.0.1:0", "--state-dir", dir};
    for (size_t i = 0; i < 5; i++)
        argv[i] = (char *)fixed[i];
    for (size_t i = 0; i < n_extra; i++)
        argv[5 + i] = (char *)extra[i];
    return argv;
}

/* Resolves the executable and launches it on dir. */
static int spawn_engine(const char *engine_path, const char *dir, const char *const *extra,
                        const char *log_path, pid_t *child, ksv_err *err)
{
    char exe[PATH_MAX];
    if (!engine_path || !realpath(engine_path, exe) || access(exe, X_OK) != 0)
        return ksv_err_set(err, 404, "ksv-engine not found or not executable: %s",
                           engine_path ? engine_path : "(null)");
    char **argv = build_argv(exe, dir, extra);
    if (!argv)
        return ksv_err_set(err, 500, "out of memory");
    int rc = spawn_detached(exe, argv, log_path, child, err);
    free(argv);
    return rc;
}

/* The attach-or-launch loop; *launched gets the pid it launched (left 0 when none). */
static int start_or_attach(const char *engine_path, const char *state_dir,
                           const char *const *extra_args, ksv_local_engine *out,
                           pid_t *launched, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    char dir[PATH_MAX], address[PATH_MAX], log_path[PATH_MAX];
    if (!state_dir || !*state_dir)
        return ksv_err_set(err, 400, "a state dir is required");
    if (ksv_mkdir_p(state_dir, 0700, err) != 0)
        return -1;
    if (!realpath(state_dir, dir))
        return ksv_err_set(err, 500, "%s: %s", state_dir, strerror(errno));
    if (state_path(address, sizeof address, dir, "address", err) != 0 ||
        state_path(log_path, sizeof log_path, dir, "engine.log", err) != 0)
        return -1;

    double deadline = ksv_mono_ms() + (double)KSV_LOCAL_ENGINE_START_TIMEOUT_MS;
    pid_t child = 0;
    int spawns = 0;
    ksv_err why;
    ksv_err_clear(&why);
    for (;;) {
        if (child == 0) {
            int lock_fd;
            lock_probe p = probe_lock(dir, &lock_fd);
            if (p == LOCK_UNKNOWN)
                return ksv_err_set(err, 500, "cannot open %s/lock: %s", dir, strerror(errno));
            if (p == LOCK_HELD) {
                /* Already running (or still starting, when another ksv launched it). */
                int rc = try_attach(dir, out, &why);
                if (rc == 0)
                    return 0;
                if (rc == -2) {
                    if (err)
                        *err = why;
                    return -1;
                }
            } else {
                /* Holding the lock proves no engine runs, so the address file is stale. */
                if (unlink(address) != 0 && errno != ENOENT) {
                    ksv_err_set(err, 500, "%s: %s", address, strerror(errno));
                    close(lock_fd);
                    return -1;
                }
                close(lock_fd); /* the engine must be able to take it */
                if (spawn_engine(engine_path, dir, extra_args, log_path, &child, err) != 0)
                    return -1;
                *launched = child;
                spawns++;
            }
        } else {
            /* The lock is not probed while our engine starts: holding it even for a moment
             * could make the engine's own non-blocking attempt fail. The address file,
             * removed before the launch, appears once an engine holds the lock. */
            int rc = try_attach(dir, out, &why);
            if (rc == 0) {
                out->started = out->pid == child;
                return 0;
            }
            if (rc == -2) {
                if (err)
                    *err = why;
                return -1;
            }
            if (!process_alive(child)) {
                char line[400];
                last_log_lines(dir, line, sizeof line);
                bool lost_race = strstr(line, "in use by another") != NULL;
                if (ksv_local_engine_running(dir) || (lost_race && spawns < 3)) {
                    child = 0; /* attach to the winner, or try again */
                } else {
                    return ksv_err_set(err, 503, "ksv-engine (pid %ld) exited at start: %s",
                                       (long)child, line[0] ? line : "see its engine.log");
                }
            }
        }
        if (ksv_mono_ms() >= deadline)
            break;
        sleep_ms(20);
    }
    char line[400];
    last_log_lines(dir, line, sizeof line);
    return ksv_err_set(err, 503, "ksv-engine on %s did not come up within %ld ms: %s%s%s", dir,
                       KSV_LOCAL_ENGINE_START_TIMEOUT_MS, why.msg[0] ? why.msg : "no answer",
                       line[0] ? "; engine.log: " : "", line);
}

int ksv_local_engine_start(const char *engine_path, const char *state_dir,
                           const char *const *extra_args, ksv_local_engine *out, ksv_err *err)
{
    pid_t launched = 0;
    if (start_or_attach(engine_path, state_dir, extra_args, out, &launched, err) == 0)
        return 0;
    /* An engine we launched but cannot use is not left behind; it is signalled only while
     * it still holds the state dir's lock under its own pid. */
    if (launched > 0 && process_alive(launched) && read_lock_pid(state_dir) == launched)
        ksv_local_engine_stop(state_dir, 2000, NULL);
    memset(out->token, 0, sizeof out->token);
    return -1;
}

/* --- stopping ----------------------------------------------------------------------------- */

/* Waits until nobody holds the lock; true when that happened before the deadline. */
static bool wait_unlocked(const char *dir, double deadline)
{
    for (;;) {
        if (!ksv_local_engine_running(dir))
            return true;
        if (ksv_mono_ms() >= deadline)
            return false;
        sleep_ms(10);
    }
}

int ksv_local_engine_stop(const char *state_dir, long timeout_ms, ksv_err *err)
{
    if (!ksv_local_engine_running(state_dir))
        return 0;
    pid_t pid = read_lock_pid(state_dir);
    if (pid <= 0)
        return ksv_err_set(err, 500, "%s/lock is held but names no pid", state_dir);
    /* The pid is signalled only while its lock is still held: re-check right before. */
    if (!ksv_local_engine_running(state_dir))
        return 0;
    if (kill(pid, SIGTERM) != 0)
        return errno == ESRCH ? 0
                              : ksv_err_set(err, 500, "cannot stop ksv-engine pid %ld: %s",
                                            (long)pid, strerror(errno));
    if (wait_unlocked(state_dir, ksv_mono_ms() + (double)(timeout_ms > 0 ? timeout_ms : 0)))
        return 0;
    if (read_lock_pid(state_dir) == pid && kill(pid, SIGKILL) != 0 && errno != ESRCH)
        return ksv_err_set(err, 500, "cannot kill ksv-engine pid %ld: %s", (long)pid,
                           strerror(errno));
    if (wait_unlocked(state_dir, ksv_mono_ms() + 5000))
        return 0;
    return ksv_err_set(err, 500, "ksv-engine pid %ld on %s did not exit", (long)pid,
                       state_dir);
}

/* --- finding the executable --------------------------------------------------------------- */

static bool executable_at(char *out, size_t cap, const char *dir, size_t dir_len)
{
    int n = snprintf(out, cap, "%.*s/ksv-engine", (int)dir_len, dir_len ? dir : ".");
    if (n < 0 || (size_t)n >= cap)
        return false;
    struct stat st;
    return stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0;
}

int ksv_find_engine(char *out, size_t cap, const char *argv0)
{
    if (!out || cap == 0)
        return -1;
    const char *env = getenv("KSV_ENGINE");
    if (env && *env) {
        int n = snprintf(out, cap, "%s", env);
        bool ok = n > 0 && (size_t)n < cap && access(out, X_OK) == 0;
        if (!ok)
            out[0] = '\0';
        return ok ? 0 : -1;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        const char *slash = strrchr(self, '/');
        if (slash && executable_at(out, cap, self, slash == self ? 1 : (size_t)(slash - self)))
            return 0;
    }
    if (argv0 && strchr(argv0, '/')) {
        const char *slash = strrchr(argv0, '/');
        if (executable_at(out, cap, argv0, slash == argv0 ? 1 : (size_t)(slash - argv0)))
            return 0;
    }
    const char *path = getenv("PATH");
    while (path && *path) {
        size_t len = strcspn(path, ":");
        if (executable_at(out, cap, path, len))
            return 0;
        path += len;
        if (*path == ':')
            path++;
    }
    out[0] = '\0';
    return -1;
}
