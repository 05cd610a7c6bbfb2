/* ssh_session.c: connecting, checking the host key, authenticating, running commands and
 * probing ports over one libssh2 session (see ssh_session.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "common/clock.h"
#include "remote/ssh_session_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fileutil.h"
#include "common/strbuf.h"
#include "remote/ssh_config.h"
#include "remote/ssh_knownhosts.h"

#define MAX_IDENTITY_FILES (KSV_SSH_CONFIG_MAX_IDENTITIES + 4)

/* --- shared helpers ------------------------------------------------------------------ */

int ksv_ssh_wait(ksv_ssh_session *s, double deadline_ms, const char *what, ksv_err *err)
{
    double left = deadline_ms - ksv_mono_ms();
    if (left <= 0) {
        s->broken = true;
        return ksv_err_set(err, 504, "%s: %s timed out", s->name, what);
    }
    int dir = libssh2_session_block_directions(s->ssh);
    struct pollfd p = {.fd = s->fd, .events = 0};
    if (dir & LIBSSH2_SESSION_BLOCK_INBOUND)
        p.events |= POLLIN;
    if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND)
        p.events |= POLLOUT;
    int cap = 1000;
    if (!p.events) {
        /* libssh2 said EAGAIN without a direction: look again soon rather than sleep. */
        p.events = POLLIN;
        cap = 10;
    }
    int ms = left < cap ? (int)left + 1 : cap;
    if (poll(&p, 1, ms) < 0 && errno != EINTR) {
        s->broken = true;
        return ksv_err_set(err, 503, "%s: %s: poll: %s", s->name, what, strerror(errno));
    }
    return 0;
}

bool ksv_ssh_rc_fatal(int rc)
{
    switch (rc) {
    case LIBSSH2_ERROR_SOCKET_NONE:
    case LIBSSH2_ERROR_BANNER_RECV:
    case LIBSSH2_ERROR_BANNER_SEND:
    case LIBSSH2_ERROR_INVALID_MAC:
    case LIBSSH2_ERROR_KEX_FAILURE:
    case LIBSSH2_ERROR_SOCKET_SEND:
    case LIBSSH2_ERROR_SOCKET_RECV:
    case LIBSSH2_ERROR_SOCKET_DISCONNECT:
    case LIBSSH2_ERROR_SOCKET_TIMEOUT:
    case LIBSSH2_ERROR_TIMEOUT:
    case LIBSSH2_ERROR_PROTO:
    case LIBSSH2_ERROR_DECRYPT:
    case LIBSSH2_ERROR_BAD_SOCKET:
    case LIBSSH2_ERROR_ALLOC:
        return true;
    default:
        return false;
    }
}

/* Plain words for the codes that end a connection; libssh2's own last-error text can be
 * stale for them (a later EAGAIN overwrote it). */
static const char *fatal_text(int rc)
{
    switch (rc) {
    case LIBSSH2_ERROR_SOCKET_RECV: return "connection lost (read failed)";
    case LIBSSH2_ERROR_SOCKET_SEND: return "connection lost (write failed)";
    case LIBSSH2_ERROR_SOCKET_DISCONNECT: return "the server closed the connection";
    case LIBSSH2_ERROR_SOCKET_TIMEOUT:
    case LIBSSH2_ERROR_TIMEOUT: return "timed out";
    default: return NULL;
    }
}

int ksv_ssh_fail(ksv_ssh_session *s, int rc, int status, const char *what, ksv_err *err)
{
    char *msg = NULL;
    int code = libssh2_session_last_error(s->ssh, &msg, NULL, 0);
    if (rc == 0)
        rc = code;
    if (fatal_text(rc))
        msg = (char *)fatal_text(rc);
    if (ksv_ssh_rc_fatal(rc)) {
        s->broken = true;
        status = 503;
    }
    return ksv_err_set(err, status, "%s: %s: %s (%d)", s->name, what,
                       msg && *msg ? msg : "libssh2 error", rc);
}

int ksv_ssh_ping_step(ksv_ssh_session *s)
{
    int rc = libssh2_channel_setenv_ex(s->pump, "KSV_PING", 8, "1", 1);
    if (rc == 0 || rc == LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED)
        return 1;   /* either answer proves the server is there */
    /* BAD_USE: another channel's packet is half sent; libssh2 wants that finished first. */
    if (rc == LIBSSH2_ERROR_EAGAIN || rc == LIBSSH2_ERROR_BAD_USE)
        return 0;
    return rc;
}

/* --- connecting ---------------------------------------------------------------------- */

static void libssh2_init_once(void)
{
    libssh2_init(0);
}

static int tcp_connect(const char *host, int port, double deadline, int *fd_out, ksv_err *err)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0)
        return ksv_err_set(err, 503, "cannot resolve %s: %s", host, gai_strerror(gai));
    int last_errno = ETIMEDOUT;
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int ready = 0;
            for (;;) {
                double left = deadline - ksv_mono_ms();
                if (left <= 0)
                    break;
                ready = poll(&p, 1, (int)left + 1);
                if (ready >= 0 || errno != EINTR)
                    break;
            }
            int so = ETIMEDOUT;
            socklen_t sl = sizeof so;
            if (ready > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) == 0 && so == 0)
                break;
            last_errno = ready > 0 ? so : ETIMEDOUT;
        } else {
            last_errno = errno;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return ksv_err_set(err, last_errno == ETIMEDOUT ? 504 : 503,
                           "cannot connect to %s port %d: %s", host, port,
                           strerror(last_errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    *fd_out = fd;
    return 0;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int try_agent(ksv_ssh_session *s, double deadline, ksv_sb *tried, bool *ok, ksv_err *err)
{
    *ok = false;
    LIBSSH2_AGENT *agent = libssh2_agent_init(s->ssh);
    if (!agent)
        return 0;
    int n = 0, rc = 0;
    if (libssh2_agent_connect(agent) != 0 || libssh2_agent_list_identities(agent) != 0) {
        ksv_sb_puts(tried, tried->len ? ", " : "");
        ksv_sb_puts(tried, "ssh-agent (unreachable)");
        libssh2_agent_free(agent);
        return 0;
    }
    struct libssh2_agent_publickey *id = NULL, *prev = NULL;
    while (!*ok && libssh2_agent_get_identity(agent, &id, prev) == 0) {
        prev = id;
        n++;
        const char *u = s->info.user;
        while ((rc = libssh2_agent_userauth(agent, u, id)) == LIBSSH2_ERROR_EAGAIN)
            if (ksv_ssh_wait(s, deadline, "authentication", err) != 0)
                break;
        if (rc == LIBSSH2_ERROR_EAGAIN || ksv_ssh_rc_fatal(rc)) {
            libssh2_agent_disconnect(agent);
            libssh2_agent_free(agent);
            return rc == LIBSSH2_ERROR_EAGAIN ? -1
                                              : ksv_ssh_fail(s, rc, 503, "authentication", err);
        }
        if (rc == 0) {
            *ok = true;
            snprintf(s->info.auth, sizeof s->info.auth, "agent key %s",
                     id->comment ? id->comment : "");
        }
    }
    if (!*ok) {
        ksv_sb_puts(tried, tried->len ? ", " : "");
        ksv_sb_printf(tried, "ssh-agent (%d key%s refused)", n, n == 1 ? "" : "s");
    }
    libssh2_agent_disconnect(agent);
    libssh2_agent_free(agent);
    return 0;
}

static int try_identity(ksv_ssh_session *s, const char *priv, double deadline, ksv_sb *tried,
                        bool *ok, ksv_err *err)
{
    *ok = false;
    char pub[PATH_MAX + 8];
    int pn = snprintf(pub, sizeof pub, "%s.pub", priv);
    const char *pubp = pn > 0 && (size_t)pn < sizeof pub && file_exists(pub) ? pub : NULL;
    const char *u = s->info.user;
    int rc;
    while ((rc = libssh2_userauth_publickey_fromfile_ex(s->ssh, u, (unsigned)strlen(u), pubp,
                                                        priv, "")) == LIBSSH2_ERROR_EAGAIN)
        if (ksv_ssh_wait(s, deadline, "authentication", err) != 0)
            return -1;
    if (rc == 0) {
        *ok = true;
        snprintf(s->info.auth, sizeof s->info.auth, "publickey %.1000s", priv);
        return 0;
    }
    if (ksv_ssh_rc_fatal(rc))
        return ksv_ssh_fail(s, rc, 503, "authentication", err);
    ksv_sb_puts(tried, tried->len ? ", " : "");
    ksv_sb_printf(tried, "%s (%s)", priv,
                  rc == LIBSSH2_ERROR_FILE ? "cannot load it; a passphrase-protected key "
                                             "must be given through ssh-agent"
                                           : "refused");
    return 0;
}

static int authenticate(ksv_ssh_session *s, const ksv_ssh_target *t,
                        const ksv_ssh_host_config *cfg, double deadline, ksv_err *err)
{
    const char *u = s->info.user;
    char *methods;
    while (!(methods = libssh2_userauth_list(s->ssh, u, (unsigned)strlen(u))) &&
           libssh2_session_last_errno(s->ssh) == LIBSSH2_ERROR_EAGAIN)
        if (ksv_ssh_wait(s, deadline, "authentication", err) != 0)
            return -1;
    if (!methods) {
        if (libssh2_userauth_authenticated(s->ssh)) {
            snprintf(s->info.auth, sizeof s->info.auth, "none");
            return 0;
        }
        return ksv_ssh_fail(s, 0, 401, "authentication", err);
    }
    if (!strstr(methods, "publickey"))
        return ksv_err_set(err, 401, "%s: the server does not accept public keys (it offers "
                                     "%s); ksv authenticates with keys only", s->name, methods);
    if (t->identity && *t->identity && !file_exists(t->identity))
        return ksv_err_set(err, 404, "identity file %s: not found", t->identity);

    ksv_sb tried;
    ksv_sb_init(&tried);
    bool ok = false;
    const char *sock = getenv("SSH_AUTH_SOCK");
    if (!t->no_agent && sock && *sock && try_agent(s, deadline, &tried, &ok, err) != 0) {
        ksv_sb_free(&tried);
        return -1;
    }
    /* Candidate files in order, without repeats. */
    char files[MAX_IDENTITY_FILES][PATH_MAX];
    size_t n = 0;
    const char *defaults[] = {"id_ed25519", "id_ecdsa", "id_rsa"};
    for (size_t i = 0; i < 1 + cfg->n_identities + 3; i++) {
        char cand[PATH_MAX];
        if (i == 0) {
            if (!t->identity || !*t->identity)
                continue;
            snprintf(cand, sizeof cand, "%s", t->identity);
        } else if (i <= cfg->n_identities) {
            snprintf(cand, sizeof cand, "%s", cfg->identities[i - 1]);
        } else {
            snprintf(cand, sizeof cand, "%s/.ssh/%s", ksv_home_dir(),
                     defaults[i - 1 - cfg->n_identities]);
        }
        bool dup = false;
        for (size_t j = 0; j < n; j++)
            dup = dup || strcmp(files[j], cand) == 0;
        if (!dup && file_exists(cand) && n < MAX_IDENTITY_FILES)
            snprintf(files[n++], sizeof files[0], "%s", cand);
    }
    for (size_t i = 0; !ok && i < n; i++)
        if (try_identity(s, files[i], deadline, &tried, &ok, err) != 0) {
            ksv_sb_free(&tried);
            return -1;
        }
    if (!ok) {
        ksv_err_set(err, 401, "%s: authentication failed; tried %s", s->name,
                    tried.len && !tried.oom ? tried.data
                                            : "nothing (no ssh-agent, no identity file)");
        ksv_sb_free(&tried);
        return -1;
    }
    ksv_sb_free(&tried);
    return 0;
}

static void local_user_name(char *out, size_t cap)
{
    const char *u = getenv("USER");
    struct passwd *pw = getpwuid(getuid());
    snprintf(out, cap, "%s", pw && pw->pw_name ? pw->pw_name : (u ? u : "root"));
}

int ksv_ssh_session_open(const ksv_ssh_target *t, ksv_ssh_session **out, ksv_err *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    *out = NULL;
    if (!t || !t->host || !*t->host)
        return ksv_err_set(err, 400, "ssh: no host given");
    if (t->port < 0 || t->port > 65535)
        return ksv_err_set(err, 400, "ssh: bad port %d", t->port);
    ksv_ssh_host_config cfg;
    if (t->config_path && !*t->config_path) {
        if (ksv_ssh_config_lookup_text("", "(none)", t->host, t->user, t->port, &cfg, err) != 0)
            return -1;
    } else if (ksv_ssh_config_lookup(t->config_path, t->host, t->user, t->port, &cfg, err) !=
               0) {
        return -1;
    }
    pthread_once(&once, libssh2_init_once);

    ksv_ssh_session *s = calloc(1, sizeof *s);
    if (!s)
        return ksv_err_set(err, 500, "out of memory");
    s->fd = -1;
    s->io_timeout_ms = t->io_timeout_ms > 0 ? t->io_timeout_ms : KSV_SSH_DEFAULT_IO_TIMEOUT_MS;
    s->dead_after_ms = t->dead_after_ms > 0 ? t->dead_after_ms : KSV_SSH_DEFAULT_DEAD_AFTER_MS;
    snprintf(s->info.host, sizeof s->info.host, "%s", cfg.hostname);
    if (t->user && *t->user)
        snprintf(s->info.user, sizeof s->info.user, "%s", t->user);
    else if (cfg.user[0])
        snprintf(s->info.user, sizeof s->info.user, "%s", cfg.user);
    else
        local_user_name(s->info.user, sizeof s->info.user);
    s->info.port = t->port > 0 ? t->port : cfg.port > 0 ? cfg.port : 22;
    if (t->known_hosts && *t->known_hosts)
        snprintf(s->info.known_hosts, sizeof s->info.known_hosts, "%s", t->known_hosts);
    else
        snprintf(s->info.known_hosts, sizeof s->info.known_hosts, "%s/.ssh/known_hosts",
                 ksv_home_dir());
    snprintf(s->name, sizeof s->name, "%s@%s:%d", s->info.user, s->info.host, s->info.port);

    long ct = t->connect_timeout_ms > 0 ? t->connect_timeout_ms
                                        : KSV_SSH_DEFAULT_CONNECT_TIMEOUT_MS;
    double deadline = ksv_mono_ms() + (double)ct;
    int rc;
    if (tcp_connect(s->info.host, s->info.port, deadline, &s->fd, err) != 0)
        goto fail_prefixed;
    s->ssh = libssh2_session_init();
    if (!s->ssh) {
        ksv_err_set(err, 500, "out of memory");
        goto fail_prefixed;
    }
    libssh2_session_set_blocking(s->ssh, 0);
    if (ksv_ssh_known_hosts_prefer(s->ssh, s->info.known_hosts, s->info.host, s->info.port,
                                   err) != 0)
        goto fail_prefixed;
    while ((rc = libssh2_session_handshake(s->ssh, s->fd)) == LIBSSH2_ERROR_EAGAIN)
        if (ksv_ssh_wait(s, deadline, "SSH handshake", err) != 0)
            goto fail;
    if (rc != 0) {
        ksv_ssh_fail(s, rc, 503, "SSH handshake", err);
        s->broken = true;
        goto fail;
    }
    ksv_ssh_host_key key;
    rc = ksv_ssh_known_hosts_verify(s->ssh, s->info.known_hosts, s->info.host, s->info.port,
                                    t->trust_new, &key, err);
    snprintf(s->info.host_key_type, sizeof s->info.host_key_type, "%s", key.type);
    snprintf(s->info.host_key_sha256, sizeof s->info.host_key_sha256, "%s", key.sha256);
    s->info.host_key_added = key.added;
    if (rc != 0)
        goto fail;
    if (authenticate(s, t, &cfg, deadline, err) != 0)
        goto fail;
    while (!(s->pump = libssh2_channel_open_session(s->ssh)) &&
           libssh2_session_last_errno(s->ssh) == LIBSSH2_ERROR_EAGAIN)
        if (ksv_ssh_wait(s, deadline, "opening the keepalive channel", err) != 0)
            goto fail;
    if (!s->pump) {
        ksv_ssh_fail(s, 0, 503, "opening the keepalive channel", err);
        goto fail;
    }
    *out = s;
    return 0;
fail_prefixed:
    ksv_err_prefix(err, "ssh %s", s->name);
fail:
    ksv_ssh_session_close(s);
    return -1;
}

void ksv_ssh_session_close(ksv_ssh_session *s)
{
    if (!s)
        return;
    if (s->ssh) {
        /* Polite goodbye in blocking mode, bounded by a short timeout; a dead link skips it,
         * and the shutdown makes whatever libssh2 still sends fail at once. */
        libssh2_session_set_timeout(s->ssh, 1000);
        libssh2_session_set_blocking(s->ssh, 1);
        if (!s->broken && s->fd >= 0) {
            if (s->pump)
                libssh2_channel_free(s->pump);
            s->pump = NULL;
            libssh2_session_disconnect(s->ssh, "ksv closing");
        }
        if (s->fd >= 0)
            shutdown(s->fd, SHUT_RDWR);
        if (s->pump)
            libssh2_channel_free(s->pump);
        libssh2_session_free(s->ssh);
    }
    if (s->fd >= 0)
        close(s->fd);
    free(s);
}

const ksv_ssh_session_info *ksv_ssh_session_get_info(const ksv_ssh_session *s)
{
    return &s->info;
}

const char *ksv_ssh_session_name(const ksv_ssh_session *s)
{
    return s->name;
}

bool ksv_ssh_session_alive(ksv_ssh_session *s, ksv_err *err)
{
    if (s->broken) {
        ksv_err_set(err, 503, "%s: the SSH link is down", s->name);
        return false;
    }
    double deadline = ksv_mono_ms() + (double)s->dead_after_ms;
    for (;;) {
        int rc = ksv_ssh_ping_step(s);
        if (rc == 1)
            return true;
        if (rc < 0) {
            ksv_ssh_fail(s, rc, 503, "keepalive", err);
            s->broken = true;
            if (err)
                err->status = 503;
            return false;
        }
        if (ksv_ssh_wait(s, deadline, "keepalive", err) != 0) {
            if (err) {
                err->status = 503;
                ksv_err_prefix(err, "the SSH link is down");
            }
            return false;
        }
    }
}

/* --- remote commands ----------------------------------------------------------------- */

int ksv_ssh_shell_quote(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    if (cap < 3)
        return -1;
    out[n++] = '\'';
    for (; *s; s++) {
        const char *piece = *s == '\'' ? "'\\''" : NULL;
        size_t len = piece ? 4 : 1;
        if (n + len + 2 > cap)
            return -1;
        if (piece)
            memcpy(out + n, piece, len);
        else
            out[n] = *s;
        n += len;
    }
    out[n++] = '\'';
    out[n] = '\0';
    return 0;
}

/* Frees a channel, closing it first. The server may hold its side open (sshd keeps an exec
 * channel until the command exits): at the deadline the channel is left half-closed for
 * session teardown to free, and the session stays usable. */
static void channel_dispose(ksv_ssh_session *s, LIBSSH2_CHANNEL *ch, double deadline)
{
    bool was_broken = s->broken;
    int rc;
    while ((rc = libssh2_channel_free(ch)) == LIBSSH2_ERROR_EAGAIN)
        if (ksv_ssh_wait(s, deadline, "closing a channel", NULL) != 0) {
            s->broken = was_broken;
            return;
        }
    if (ksv_ssh_rc_fatal(rc))
        s->broken = true;
}

static LIBSSH2_CHANNEL *open_exec_channel(ksv_ssh_session *s, const char *command,
                                          double deadline, ksv_err *err)
{
    LIBSSH2_CHANNEL *ch;
    while (!(ch = libssh2_channel_open_session(s->ssh)) &&
           libssh2_session_last_errno(s->ssh) == LIBSSH2_ERROR_EAGAIN)
        if (ksv_ssh_wait(s, deadline, "opening a channel", err) != 0)
            return NULL;
    if (!ch) {
        ksv_ssh_fail(s, 0, 500, "opening a channel", err);
        return NULL;
    }
    int rc;
    while ((rc = libssh2_channel_exec(ch, command)) == LIBSSH2_ERROR_EAGAIN)
        if (ksv_ssh_wait(s, deadline, "starting a command", err) != 0)
            return NULL;
    if (rc != 0) {
        ksv_ssh_fail(s, rc, 500, "starting a command", err);
        channel_dispose(s, ch, deadline);
        return NULL;
    }
    return ch;
}

void ksv_ssh_exec_result_free(ksv_ssh_exec_result *r)
{
    if (!r)
        return;
    free(r->out);
    free(r->err_text);
    memset(r, 0, sizeof *r);
}

int ksv_ssh_exec(ksv_ssh_session *s, const char *command, const char *stdin_data,
                 long timeout_ms, ksv_ssh_exec_result *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    if (s->broken)
        return ksv_err_set(err, 503, "%s: the SSH link is down", s->name);
    double deadline = ksv_mono_ms() + (double)(timeout_ms > 0 ? timeout_ms
                                                                 : s->io_timeout_ms);
    LIBSSH2_CHANNEL *ch = open_exec_channel(s, command, deadline, err);
    if (!ch)
        return -1;
    ksv_sb o, e;
    ksv_sb_init(&o);
    ksv_sb_init(&e);
    size_t in_len = stdin_data ? strlen(stdin_data) : 0, in_off = 0;
    bool eof_sent = false;
    int rc = 0;
    char buf[16384];
    for (;;) {
        bool progress = false;
        if (in_off < in_len) {
            ssize_t w = libssh2_channel_write(ch, stdin_data + in_off, in_len - in_off);
            if (w > 0) {
                in_off += (size_t)w;
                progress = true;
            } else if (w != LIBSSH2_ERROR_EAGAIN) {
                rc = (int)w;
                break;
            }
        } else if (!eof_sent) {
            int r = libssh2_channel_send_eof(ch);
            if (r == 0)
                eof_sent = true;
            else if (r != LIBSSH2_ERROR_EAGAIN) {
                rc = r;
                break;
            }
        }
        ssize_t n = libssh2_channel_read(ch, buf, sizeof buf);
        if (n > 0) {
            ksv_sb_append(&o, buf, (size_t)n);
            progress = true;
        } else if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
            rc = (int)n;
            break;
        }
        ssize_t m = libssh2_channel_read_stderr(ch, buf, sizeof buf);
        if (m > 0) {
            ksv_sb_append(&e, buf, (size_t)m);
            progress = true;
        } else if (m < 0 && m != LIBSSH2_ERROR_EAGAIN) {
            rc = (int)m;
            break;
        }
        if (o.len + e.len > KSV_SSH_EXEC_MAX_OUTPUT) {
            rc = 1;
            break;
        }
        if (progress)
            continue;
        if (libssh2_channel_eof(ch))
            break;
        if (ksv_ssh_wait(s, deadline, "running a command", err) != 0) {
            rc = LIBSSH2_ERROR_TIMEOUT;
            break;
        }
    }
    if (rc == 0) {
        int c;
        while ((c = libssh2_channel_close(ch)) == LIBSSH2_ERROR_EAGAIN)
            if (ksv_ssh_wait(s, deadline, "running a command", err) != 0)
                break;
        if (c != 0)
            rc = c == LIBSSH2_ERROR_EAGAIN ? LIBSSH2_ERROR_TIMEOUT : c;
    }
    if (rc == 0) {
        out->exit_status = libssh2_channel_get_exit_status(ch);
        char *sig = NULL;
        size_t siglen = 0;
        libssh2_channel_get_exit_signal(ch, &sig, &siglen, NULL, NULL, NULL, NULL);
        if (sig) {
            snprintf(out->exit_signal, sizeof out->exit_signal, "%.*s", (int)siglen, sig);
            out->exit_status = -1;
            libssh2_free(s->ssh, sig);
        }
    } else if (rc == LIBSSH2_ERROR_TIMEOUT) {
        /* Only waiting timed out (no libssh2 call is mid-way), so the session stays usable;
         * the channel is closed below, and the command runs on until it exits by itself. */
        s->broken = false;
        ksv_err_set(err, 504, "%s: command did not finish within %ld ms: %.200s", s->name,
                    timeout_ms > 0 ? timeout_ms : s->io_timeout_ms, command);
    } else if (rc == 1) {
        ksv_err_set(err, 413, "%s: command output over %zu bytes", s->name,
                    KSV_SSH_EXEC_MAX_OUTPUT);
    } else {
        ksv_ssh_fail(s, rc, 500, "running a command", err);
    }
    channel_dispose(s, ch, ksv_mono_ms() + (rc == LIBSSH2_ERROR_TIMEOUT ? 200 : 1000));
    if (rc != 0 || o.oom || e.oom) {
        if (rc == 0)
            ksv_err_set(err, 500, "out of memory");
        ksv_sb_free(&o);
        ksv_sb_free(&e);
        return -1;
    }
    ksv_sb_putc(&o, '\0');
    ksv_sb_putc(&e, '\0');
    out->out = ksv_sb_steal(&o, &out->out_len);
    out->err_text = ksv_sb_steal(&e, &out->err_len);
    out->out_len--;
    out->err_len--;
    if (!out->out || !out->err_text) {
        ksv_ssh_exec_result_free(out);
        return ksv_err_set(err, 500, "out of memory");
    }
    return 0;
}

/* --- probing a port on the node ------------------------------------------------------- */

int ksv_ssh_http_probe(ksv_ssh_session *s, const char *host, int port, const char *path,
                       long timeout_ms, int *http_status, ksv_err *err)
{
    *http_status = 0;
    if (s->broken)
        return ksv_err_set(err, 503, "%s: the SSH link is down", s->name);
    double deadline = ksv_mono_ms() + (double)(timeout_ms > 0 ? timeout_ms
                                                                 : s->io_timeout_ms);
    LIBSSH2_CHANNEL *ch;
    while (!(ch = libssh2_channel_direct_tcpip_ex(s->ssh, host, port, "127.0.0.1", 0)) &&
           libssh2_session_last_errno(s->ssh) == LIBSSH2_ERROR_EAGAIN)
        if (ksv_ssh_wait(s, deadline, "opening a tunnel channel", err) != 0)
            return -1;
    if (!ch) {
        int e = libssh2_session_last_errno(s->ssh);
        if (ksv_ssh_rc_fatal(e))
            return ksv_ssh_fail(s, e, 503, "opening a tunnel channel", err);
        return ksv_err_set(err, 503, "%s: nothing answers on %s:%d on the node", s->name, host,
                           port);
    }
    char req[1200];
    int len = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s:%d\r\n\r\n", path, host,
                       port);
    if (len < 0 || (size_t)len >= sizeof req) {
        channel_dispose(s, ch, deadline);
        return ksv_err_set(err, 400, "probe path too long");
    }
    size_t off = 0;
    char head[256];
    size_t got = 0;
    int rc = 0;
    while (rc == 0) {
        bool progress = false;
        if (off < (size_t)len) {
            ssize_t w = libssh2_channel_write(ch, req + off, (size_t)len - off);
            if (w > 0) {
                off += (size_t)w;
                progress = true;
            } else if (w != LIBSSH2_ERROR_EAGAIN) {
                rc = (int)w;
                break;
            }
        }
        if (got < sizeof head - 1) {
            ssize_t n = libssh2_channel_read(ch, head + got, sizeof head - 1 - got);
            if (n > 0) {
                got += (size_t)n;
                progress = true;
            } else if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
                rc = (int)n;
                break;
            }
        }
        head[got] = '\0';
        if (strstr(head, "\r\n") || got == sizeof head - 1 || libssh2_channel_eof(ch))
            break;
        if (!progress && ksv_ssh_wait(s, deadline, "probing the engine", err) != 0) {
            s->broken = false;   /* only waiting timed out; the channel is disposed below */
            channel_dispose(s, ch, ksv_mono_ms() + 1000);
            return ksv_err_set(err, 503, "%s: no HTTP answer from %s:%d on the node within "
                                         "%ld ms", s->name, host, port,
                               timeout_ms > 0 ? timeout_ms : s->io_timeout_ms);
        }
    }
    channel_dispose(s, ch, ksv_mono_ms() + 1000);
    if (rc != 0)
        return ksv_ssh_fail(s, rc, 503, "probing the engine", err);
    int major, minor, code;
    if (sscanf(head, "HTTP/%d.%d %d", &major, &minor, &code) != 3 || code < 100 || code > 999)
        return ksv_err_set(err, 503, "%s: %s:%d on the node did not answer HTTP", s->name,
                           host, port);
    *http_status = code;
    return 0;
}
