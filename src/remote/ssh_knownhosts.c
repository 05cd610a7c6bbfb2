/* ssh_knownhosts.c: host key checks against an OpenSSH known_hosts file through libssh2's
 * knownhost API (see ssh_knownhosts.h). */
#include "remote/ssh_knownhosts.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileutil.h"

#define KNOWN_HOSTS_MAX_BYTES ((size_t)16 << 20)

typedef struct key_kind {
    int hostkey_type;          /* LIBSSH2_HOSTKEY_TYPE_* */
    int knownhost_type;        /* LIBSSH2_KNOWNHOST_KEY_* */
    const char *name;
    const char *methods;       /* host key algorithms that produce this key type */
} key_kind;

static const key_kind KINDS[] = {
    {LIBSSH2_HOSTKEY_TYPE_ED25519, LIBSSH2_KNOWNHOST_KEY_ED25519, "ssh-ed25519", "ssh-ed25519"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_KNOWNHOST_KEY_ECDSA_256, "ecdsa-sha2-nistp256",
     "ecdsa-sha2-nistp256"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_KNOWNHOST_KEY_ECDSA_384, "ecdsa-sha2-nistp384",
     "ecdsa-sha2-nistp384"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_521, LIBSSH2_KNOWNHOST_KEY_ECDSA_521, "ecdsa-sha2-nistp521",
     "ecdsa-sha2-nistp521"},
    {LIBSSH2_HOSTKEY_TYPE_RSA, LIBSSH2_KNOWNHOST_KEY_SSHRSA, "ssh-rsa",
     "rsa-sha2-512,rsa-sha2-256,ssh-rsa"},
    {LIBSSH2_HOSTKEY_TYPE_DSS, LIBSSH2_KNOWNHOST_KEY_SSHDSS, "ssh-dss", "ssh-dss"},
};
#define N_KINDS (sizeof KINDS / sizeof KINDS[0])

static const key_kind *kind_by_hostkey(int t)
{
    for (size_t i = 0; i < N_KINDS; i++)
        if (KINDS[i].hostkey_type == t)
            return &KINDS[i];
    return NULL;
}

static const key_kind *kind_by_knownhost(int t)
{
    for (size_t i = 0; i < N_KINDS; i++)
        if (KINDS[i].knownhost_type == t)
            return &KINDS[i];
    return NULL;
}

static void base64_nopad(const unsigned char *in, size_t n, char *out, size_t cap)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = tbl[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = tbl[v & 63];
    }
    out[o] = '\0';
}

/* The name OpenSSH records for host:port. */
static void entry_name(const char *host, int port, char *out, size_t cap)
{
    if (port == 22)
        snprintf(out, cap, "%s", host);
    else
        snprintf(out, cap, "[%s]:%d", host, port);
}

/* Reads file (a missing one is empty) into text; *text NULL when missing. */
static int read_known_hosts(const char *file, char **text, ksv_err *err)
{
    size_t len;
    ksv_err rerr;
    *text = NULL;
    if (ksv_read_file(file, KNOWN_HOSTS_MAX_BYTES, text, &len, &rerr) != 0) {
        if (rerr.status == 404)
            return 0;
        return ksv_err_set(err, 500, "known_hosts %s", rerr.msg);
    }
    return 0;
}

/* Calls fn for each entry line (1-based line numbers); comments, blanks and marker lines
 * are skipped. Stops early when fn returns nonzero and returns that value. */
typedef int (*line_fn)(const char *line, size_t len, int lineno, void *arg);
static int each_line(const char *text, line_fn fn, void *arg)
{
    int lineno = 0;
    const char *p = text;
    while (p && *p) {
        lineno++;
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        const char *s = p;
        p = eol ? eol + 1 : NULL;
        while (len > 0 && (*s == ' ' || *s == '\t')) {
            s++;
            len--;
        }
        while (len > 0 && (s[len - 1] == '\r' || s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        if (len == 0 || *s == '#' || *s == '@')
            continue;
        int rc = fn(s, len, lineno, arg);
        if (rc)
            return rc;
    }
    return 0;
}

/* libssh2_knownhost_readline looks one byte past len (and drops a key's last character
 * when that byte is a newline), so each line goes to it alone, NUL-terminated. */
static int readline_alone(LIBSSH2_KNOWNHOSTS *kh, const char *line, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, line, len);
    copy[len] = '\0';
    int rc = libssh2_knownhost_readline(kh, copy, len, LIBSSH2_KNOWNHOST_FILE_OPENSSH);
    free(copy);
    return rc;
}

/* Whether s[0, n) is n characters of base64 that decode to exactly 20 bytes (SHA-1). */
static bool base64_of_20_bytes(const char *s, size_t n)
{
    if (n != 28 || s[27] != '=')
        return false;
    for (size_t i = 0; i < 27; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return false;
    }
    return true;
}

/* A hashed host field is "|1|" base64(20-byte salt) "|" base64(20-byte HMAC-SHA1), as
 * OpenSSH writes it. libssh2 1.10 leaks an OpenSSL context on some malformed ones (found
 * by fuzz/fuzz_known_hosts.c), so they are skipped here, as OpenSSH skips them. */
static bool hashed_field_ok(const char *line, size_t len)
{
    if (len == 0 || line[0] != '|')
        return true; /* not hashed */
    size_t field = 0;
    while (field < len && line[field] != ' ' && line[field] != '\t')
        field++;
    if (field != 3 + 28 + 1 + 28 || memcmp(line, "|1|", 3) != 0 || line[31] != '|')
        return false;
    return base64_of_20_bytes(line + 3, 28) && base64_of_20_bytes(line + 32, 28);
}

/* Lines libssh2 may read: a malformed hashed field is skipped. */
static int readline_checked(LIBSSH2_KNOWNHOSTS *kh, const char *line, size_t len)
{
    return hashed_field_ok(line, len) ? readline_alone(kh, line, len) : -1;
}

static int load_line(const char *line, size_t len, int lineno, void *arg)
{
    (void)lineno;
    /* A line libssh2 cannot parse (an unknown key type) is skipped, as OpenSSH does. */
    readline_checked(arg, line, len);
    return 0;
}

static LIBSSH2_KNOWNHOSTS *load_hosts(LIBSSH2_SESSION *ssh, const char *text)
{
    LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(ssh);
    if (kh && text)
        each_line(text, load_line, kh);
    return kh;
}

static int check(LIBSSH2_KNOWNHOSTS *kh, const char *host, int port, const char *key,
                 size_t keylen, int typemask)
{
    return libssh2_knownhost_checkp(kh, host, port, key, keylen,
                                    LIBSSH2_KNOWNHOST_TYPE_PLAIN | typemask, NULL);
}

void ksv_ssh_known_hosts_methods_text(LIBSSH2_SESSION *ssh, const char *text,
                                      const char *host, int port, char *methods, size_t cap)
{
    methods[0] = '\0';
    if (!text || cap == 0)
        return;
    LIBSSH2_KNOWNHOSTS *kh = load_hosts(ssh, text);
    if (!kh)
        return;
    bool have[N_KINDS] = {false};
    struct libssh2_knownhost *ext = NULL, *prev = NULL;
    while (libssh2_knownhost_get(kh, &ext, prev) == 0) {
        prev = ext;
        int kt = ext->typemask & LIBSSH2_KNOWNHOST_KEY_MASK;
        const key_kind *k = kind_by_knownhost(kt);
        if (!k || !ext->key)
            continue;
        /* An entry names this host when checking the host with the entry's own key
         * matches: that handles hashed names and comma lists without reimplementing them. */
        if (check(kh, host, port, ext->key, strlen(ext->key),
                  LIBSSH2_KNOWNHOST_KEYENC_BASE64 | kt) == LIBSSH2_KNOWNHOST_CHECK_MATCH)
            have[k - KINDS] = true;
    }
    libssh2_knownhost_free(kh);
    for (size_t i = 0; i < N_KINDS; i++) {
        if (!have[i])
            continue;
        size_t n = strlen(methods);
        snprintf(methods + n, cap - n, "%s%s", n ? "," : "", KINDS[i].methods);
    }
}

int ksv_ssh_known_hosts_prefer(LIBSSH2_SESSION *ssh, const char *file, const char *host,
                               int port, ksv_err *err)
{
    char *text;
    if (read_known_hosts(file, &text, err) != 0)
        return -1;
    char methods[256];
    ksv_ssh_known_hosts_methods_text(ssh, text, host, port, methods, sizeof methods);
    free(text);
    if (!methods[0])
        return 0;
    int rc = libssh2_session_method_pref(ssh, LIBSSH2_METHOD_HOSTKEY, methods);
    if (rc != 0)
        return ksv_err_set(err, 500, "cannot ask the server for host key types %s (%d)",
                           methods, rc);
    return 0;
}

typedef struct mismatch_search {
    LIBSSH2_SESSION *ssh;
    const char *host;
    int port;
    const char *key;
    size_t keylen;
    int typemask;
} mismatch_search;

/* Returns the line number of the entry that disagrees with the presented key. */
static int find_mismatch(const char *line, size_t len, int lineno, void *arg)
{
    mismatch_search *m = arg;
    LIBSSH2_KNOWNHOSTS *one = libssh2_knownhost_init(m->ssh);
    if (!one)
        return 0;
    int found = 0;
    if (readline_checked(one, line, len) == 0 &&
        check(one, m->host, m->port, m->key, m->keylen, m->typemask) ==
            LIBSSH2_KNOWNHOST_CHECK_MISMATCH)
        found = lineno;
    libssh2_knownhost_free(one);
    return found;
}

int ksv_ssh_known_hosts_check_text(LIBSSH2_SESSION *ssh, const char *text, const char *host,
                                   int port, const char *key, size_t keylen, int hostkey_type,
                                   int *line)
{
    *line = 0;
    const key_kind *kind = kind_by_hostkey(hostkey_type);
    if (!kind || !key || keylen == 0)
        return KSV_KNOWN_HOST_ERROR;
    LIBSSH2_KNOWNHOSTS *kh = load_hosts(ssh, text);
    if (!kh)
        return KSV_KNOWN_HOST_ERROR;
    int typemask = LIBSSH2_KNOWNHOST_KEYENC_RAW | kind->knownhost_type;
    int rc = check(kh, host, port, key, keylen, typemask);
    libssh2_knownhost_free(kh);
    if (rc == LIBSSH2_KNOWNHOST_CHECK_MATCH)
        return KSV_KNOWN_HOST_MATCH;
    if (rc == LIBSSH2_KNOWNHOST_CHECK_MISMATCH) {
        mismatch_search m = {ssh, host, port, key, keylen, typemask};
        *line = text ? each_line(text, find_mismatch, &m) : 0;
        return KSV_KNOWN_HOST_CHANGED;
    }
    return rc == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND ? KSV_KNOWN_HOST_UNKNOWN
                                                  : KSV_KNOWN_HOST_ERROR;
}

static int append_entry(LIBSSH2_SESSION *ssh, const char *file, const char *host, int port,
                        const char *key, size_t keylen, int kt, ksv_err *err)
{
    LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(ssh);
    if (!kh)
        return ksv_err_set(err, 500, "out of memory");
    char name[300];
    entry_name(host, port, name, sizeof name);
    struct libssh2_knownhost *entry = NULL;
    char line[16384];
    size_t line_len = 0;
    if (libssh2_knownhost_addc(kh, name, NULL, key, keylen, NULL, 0,
                               LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | kt,
                               &entry) != 0 ||
        libssh2_knownhost_writeline(kh, entry, line, sizeof line, &line_len,
                                    LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0) {
        libssh2_knownhost_free(kh);
        return ksv_err_set(err, 500, "cannot format a known_hosts line for %s", name);
    }
    libssh2_knownhost_free(kh);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (ksv_mkdir_p(dir, 0700, err) != 0)
            return -1;
    }
    int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return ksv_err_set(err, 500, "cannot record the host key in %s: %s", file,
                           strerror(errno));
    /* A file whose last line lacks its newline would glue our entry onto it. */
    struct stat st;
    bool need_nl = false;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        int rfd = open(file, O_RDONLY | O_CLOEXEC);
        char last = '\n';
        if (rfd >= 0) {
            if (pread(rfd, &last, 1, st.st_size - 1) != 1)
                last = '\n';
            close(rfd);
        }
        need_nl = last != '\n';
    }
    bool ok = (!need_nl || write(fd, "\n", 1) == 1) &&
              write(fd, line, line_len) == (ssize_t)line_len && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (!ok)
        return ksv_err_set(err, 500, "cannot record the host key in %s: %s", file, strerror(e));
    return 0;
}

int ksv_ssh_known_hosts_verify(LIBSSH2_SESSION *ssh, const char *file, const char *host,
                               int port, bool trust_new, ksv_ssh_host_key *key_out,
                               ksv_err *err)
{
    ksv_ssh_host_key dummy;
    ksv_ssh_host_key *k = key_out ? key_out : &dummy;
    memset(k, 0, sizeof *k);
    size_t keylen = 0;
    int hktype = 0;
    const char *key = libssh2_session_hostkey(ssh, &keylen, &hktype);
    const key_kind *kind = kind_by_hostkey(hktype);
    if (!key || keylen == 0)
        return ksv_err_set(err, 500, "the server sent no host key");
    snprintf(k->type, sizeof k->type, "%s", kind ? kind->name : "unknown");
    const char *hash = libssh2_hostkey_hash(ssh, LIBSSH2_HOSTKEY_HASH_SHA256);
    if (hash) {
        char b64[48];
        base64_nopad((const unsigned char *)hash, 32, b64, sizeof b64);
        snprintf(k->sha256, sizeof k->sha256, "SHA256:%s", b64);
    }
    char name[300];
    entry_name(host, port, name, sizeof name);
    if (!kind)
        return ksv_err_set(err, 403, "host %s offered a host key of a type ksv cannot check "
                                     "(%d)", name, hktype);
    char *text;
    if (read_known_hosts(file, &text, err) != 0)
        return -1;
    int line = 0;
    int rc = ksv_ssh_known_hosts_check_text(ssh, text, host, port, key, keylen, hktype, &line);
    free(text);
    if (rc == KSV_KNOWN_HOST_MATCH)
        return 0;
    if (rc == KSV_KNOWN_HOST_CHANGED)
        return ksv_err_set(err, 403,
                           "@@@ WARNING: HOST KEY FOR %s HAS CHANGED @@@ the %s key it sent "
                           "(%s) is not the one recorded in %s:%d. Someone could be "
                           "intercepting the connection, or the host was reinstalled. "
                           "Refusing to connect; if the change is expected, remove line %d "
                           "of %s and add the node again with --trust-new",
                           name, k->type, k->sha256, file, line, line, file);
    if (rc != KSV_KNOWN_HOST_UNKNOWN)
        return ksv_err_set(err, 500, "cannot check the host key of %s against %s", name, file);
    if (!trust_new)
        return ksv_err_set(err, 403,
                           "host %s is not in %s (its %s key is %s); refusing to connect. "
                           "Check that fingerprint, then add the node with --trust-new",
                           name, file, k->type, k->sha256);
    if (append_entry(ssh, file, host, port, key, keylen, kind->knownhost_type, err) != 0)
        return -1;
    k->added = true;
    return 0;
}
