/* ssh_config.c: Host blocks and the HostName/User/Port/IdentityFile keys of an OpenSSH
 * client config file (see ssh_config.h). */
#include "remote/ssh_config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/fileutil.h"

#define MAX_ARGS 64
#define MAX_LINE 4096

bool ksv_ssh_pattern_match(const char *pattern, const char *name)
{
    /* Iterative glob with one backtrack point: linear in practice, no recursion depth. */
    const char *star = NULL, *resume = NULL;
    while (*name) {
        if (*pattern == '*') {
            star = pattern++;
            resume = name;
        } else if (*pattern == '?' ||
                   tolower((unsigned char)*pattern) == tolower((unsigned char)*name)) {
            pattern++;
            name++;
        } else if (star) {
            pattern = star + 1;
            name = ++resume;
        } else {
            return false;
        }
    }
    while (*pattern == '*')
        pattern++;
    return *pattern == '\0';
}

/* Splits one line into words: blanks separate, double quotes group (a backslash inside
 * quotes takes the next character literally). "Key=Value" splits at the first '='.
 * Returns the word count, or -1 for an unbalanced quote. Words point into buf. */
static int split_words(char *line, char **words, int max_words)
{
    int n = 0;
    char *p = line;
    bool first = true;
    while (*p) {
        while (*p == ' ' || *p == '\t' || (!first && n == 1 && *p == '='))
            p++;
        if (!*p)
            break;
        if (n == max_words)
            return n;
        if (*p == '"') {
            char *w = ++p, *q = p;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                *q++ = *p++;
            }
            if (*p != '"')
                return -1;
            p++;
            *q = '\0';
            words[n++] = w;
            if (*p && *p != ' ' && *p != '\t')
                return -1;   /* text glued to a closing quote */
            if (*p)
                p++;
        } else {
            words[n++] = p;
            while (*p && *p != ' ' && *p != '\t' && !(first && *p == '='))
                p++;
            if (*p)
                *p++ = '\0';
        }
        first = false;
    }
    return n;
}

static bool host_line_matches(char **patterns, int n, const char *alias)
{
    bool matched = false;
    for (int i = 0; i < n; i++) {
        const char *pat = patterns[i];
        bool negated = pat[0] == '!';
        if (negated)
            pat++;
        if (ksv_ssh_pattern_match(pat, alias)) {
            if (negated)
                return false;   /* a matching negation vetoes the whole line */
            matched = true;
        }
    }
    return matched;
}

static const char *local_user(void)
{
    const char *u = getenv("USER");
    if (u && *u)
        return u;
    struct passwd *pw = getpwuid(getuid());
    return pw && pw->pw_name ? pw->pw_name : "";
}

/* Expands ~ (leading) and the % tokens in allowed into out. -1 on an unknown token or
 * when the result does not fit. */
static int expand_tokens(const char *in, const char *allowed, const char *alias,
                         const char *host, const char *ruser, int port, char *out, size_t cap)
{
    size_t n = 0;
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", port > 0 ? port : 22);
    const char *p = in;
    if (strchr(allowed, '~') && p[0] == '~' && (p[1] == '/' || p[1] == '\0')) {
        int w = snprintf(out, cap, "%s", ksv_home_dir());
        if (w < 0 || (size_t)w >= cap)
            return -1;
        n = (size_t)w;
        p++;
    }
    for (; *p; p++) {
        const char *piece = NULL;
        char one[2] = {*p, '\0'};
        if (*p != '%') {
            piece = one;
        } else {
            char t = p[1];
            if (!t || !strchr(allowed, t))
                return -1;
            p++;
            switch (t) {
            case '%': piece = "%"; break;
            case 'h': piece = host; break;
            case 'n': piece = alias; break;
            case 'd': piece = ksv_home_dir(); break;
            case 'u': piece = local_user(); break;
            case 'r': piece = ruser && *ruser ? ruser : local_user(); break;
            case 'p': piece = portbuf; break;
            default: return -1;
            }
        }
        size_t len = strlen(piece);
        if (n + len + 1 > cap)
            return -1;
        memcpy(out + n, piece, len);
        n += len;
    }
    out[n] = '\0';
    return 0;
}

int ksv_ssh_config_lookup_text(const char *text, const char *origin, const char *alias,
                               const char *remote_user, int port, ksv_ssh_host_config *out,
                               ksv_err *err)
{
    memset(out, 0, sizeof *out);
    if (!alias || !*alias)
        return ksv_err_set(err, 400, "ssh config: empty host name");
    if (strlen(alias) >= sizeof out->hostname)
        return ksv_err_set(err, 400, "ssh config: host name too long");
    char raw_hostname[256] = "";
    char raw_ids[KSV_SSH_CONFIG_MAX_IDENTITIES][1024];
    size_t n_ids = 0;
    bool in_match = true;   /* lines before the first Host apply to every host */
    int lineno = 0;
    const char *p = text;
    while (*p) {
        lineno++;
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len >= MAX_LINE)
            return ksv_err_set(err, 400, "%s:%d: line too long", origin, lineno);
        char line[MAX_LINE];
        memcpy(line, p, len);
        line[len] = '\0';
        p = eol ? eol + 1 : p + len;
        if (len > 0 && line[len - 1] == '\r')
            line[len - 1] = '\0';
        char *start = line;
        while (*start == ' ' || *start == '\t')
            start++;
        if (*start == '\0' || *start == '#')
            continue;
        char *words[MAX_ARGS];
        int nw = split_words(start, words, MAX_ARGS);
        if (nw < 0)
            return ksv_err_set(err, 400, "%s:%d: unbalanced quote", origin, lineno);
        if (nw == 0)
            continue;
        const char *key = words[0];
        if (nw < 2)
            return ksv_err_set(err, 400, "%s:%d: %s needs a value", origin, lineno, key);
        if (strcasecmp(key, "Host") == 0) {
            in_match = host_line_matches(words + 1, nw - 1, alias);
            continue;
        }
        if (strcasecmp(key, "Match") == 0) {
            in_match = false;   /* ksv does not evaluate Match criteria: never apply them */
            continue;
        }
        bool is_port = strcasecmp(key, "Port") == 0;
        if (is_port) {
            /* Validated wherever it appears, as OpenSSH rejects the whole file. */
            char *end;
            errno = 0;
            long v = strtol(words[1], &end, 10);
            if (errno || *end || end == words[1] || v < 1 || v > 65535)
                return ksv_err_set(err, 400, "%s:%d: bad Port '%s'", origin, lineno, words[1]);
            if (in_match && out->port == 0)
                out->port = (int)v;
        } else if (strcasecmp(key, "HostName") == 0) {
            if (strlen(words[1]) >= sizeof raw_hostname)
                return ksv_err_set(err, 400, "%s:%d: HostName too long", origin, lineno);
            if (in_match && !raw_hostname[0])
                snprintf(raw_hostname, sizeof raw_hostname, "%s", words[1]);
        } else if (strcasecmp(key, "User") == 0) {
            if (strlen(words[1]) >= sizeof out->user)
                return ksv_err_set(err, 400, "%s:%d: User too long", origin, lineno);
            if (in_match && !out->user[0])
                snprintf(out->user, sizeof out->user, "%s", words[1]);
        } else if (strcasecmp(key, "IdentityFile") == 0) {
            if (strlen(words[1]) >= sizeof raw_ids[0])
                return ksv_err_set(err, 400, "%s:%d: IdentityFile too long", origin, lineno);
            if (in_match && n_ids < KSV_SSH_CONFIG_MAX_IDENTITIES)
                snprintf(raw_ids[n_ids++], sizeof raw_ids[0], "%s", words[1]);
        }
    }
    if (raw_hostname[0]) {
        if (expand_tokens(raw_hostname, "%h", alias, alias, NULL, 0, out->hostname,
                          sizeof out->hostname) != 0)
            return ksv_err_set(err, 400, "%s: HostName '%s': unknown %% token or too long",
                               origin, raw_hostname);
    } else {
        snprintf(out->hostname, sizeof out->hostname, "%s", alias);
    }
    const char *ruser = remote_user && *remote_user ? remote_user : out->user;
    int eff_port = port > 0 ? port : out->port;
    for (size_t i = 0; i < n_ids; i++) {
        if (expand_tokens(raw_ids[i], "~%dhnurp", alias, out->hostname, ruser, eff_port,
                          out->identities[i], sizeof out->identities[i]) != 0)
            return ksv_err_set(err, 400, "%s: IdentityFile '%s': unknown %% token or too long",
                               origin, raw_ids[i]);
    }
    out->n_identities = n_ids;
    return 0;
}

int ksv_ssh_config_lookup(const char *path, const char *alias, const char *remote_user,
                          int port, ksv_ssh_host_config *out, ksv_err *err)
{
    char def[PATH_MAX];
    if (!path) {
        snprintf(def, sizeof def, "%s/.ssh/config", ksv_home_dir());
        path = def;
    }
    char *text = NULL;
    size_t len = 0;
    ksv_err rerr;
    if (ksv_read_file(path, KSV_SSH_CONFIG_MAX_BYTES, &text, &len, &rerr) != 0) {
        if (rerr.status == 404)
            return ksv_ssh_config_lookup_text("", path, alias, remote_user, port, out, err);
        if (err)
            *err = rerr;
        return -1;
    }
    if (memchr(text, '\0', len)) {
        free(text);
        return ksv_err_set(err, 400, "%s: not a text file", path);
    }
    int rc = ksv_ssh_config_lookup_text(text, path, alias, remote_user, port, out, err);
    free(text);
    return rc;
}

static bool host_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

int ksv_ssh_parse_address(const char *address, char *user, size_t user_cap, char *host,
                          size_t host_cap, int *port, ksv_err *err)
{
    user[0] = host[0] = '\0';
    *port = 0;
    if (!address || strncmp(address, "ssh://", 6) != 0)
        return ksv_err_set(err, 400, "not an ssh:// address: %.200s", address ? address : "");
    const char *p = address + 6;
    size_t len = strlen(p);
    if (len > 0 && p[len - 1] == '/')
        len--;
    if (memchr(p, '/', len) || memchr(p, '?', len) || memchr(p, '#', len))
        return ksv_err_set(err, 400, "%.200s: an ssh:// address takes no path", address);
    const char *at = NULL;
    for (size_t i = 0; i < len; i++)
        if (p[i] == '@')
            at = p + i;
    if (at) {
        size_t ulen = (size_t)(at - p);
        if (ulen == 0 || ulen >= user_cap)
            return ksv_err_set(err, 400, "%.200s: bad user name", address);
        if (memchr(p, ':', ulen))
            return ksv_err_set(err, 400, "%.200s: passwords are not supported (ksv uses keys)",
                               address);
        for (size_t i = 0; i < ulen; i++)
            if (!host_char(p[i]))
                return ksv_err_set(err, 400, "%.200s: bad user name", address);
        memcpy(user, p, ulen);
        user[ulen] = '\0';
        len -= ulen + 1;
        p = at + 1;
    }
    const char *hend;
    size_t hlen;
    const char *hstart = p;
    if (len > 0 && p[0] == '[') {
        const char *close = memchr(p, ']', len);
        if (!close || close == p + 1)
            return ksv_err_set(err, 400, "%.200s: bad [IPv6] host", address);
        hstart = p + 1;
        hlen = (size_t)(close - hstart);
        for (size_t i = 0; i < hlen; i++)
            if (!isxdigit((unsigned char)hstart[i]) && hstart[i] != ':' && hstart[i] != '.')
                return ksv_err_set(err, 400, "%.200s: bad [IPv6] host", address);
        hend = close + 1;
    } else {
        hlen = 0;
        while (hlen < len && p[hlen] != ':')
            hlen++;
        for (size_t i = 0; i < hlen; i++)
            if (!host_char(p[i]))
                return ksv_err_set(err, 400, "%.200s: bad host name", address);
        hend = p + hlen;
    }
    if (hlen == 0 || hlen >= host_cap)
        return ksv_err_set(err, 400, "%.200s: missing or too long host name", address);
    memcpy(host, hstart, hlen);
    host[hlen] = '\0';
    size_t rest = len - (size_t)(hend - p);
    if (rest > 0) {
        if (hend[0] != ':' || rest < 2 || rest > 6)
            return ksv_err_set(err, 400, "%.200s: bad port", address);
        long v = 0;
        for (size_t i = 1; i < rest; i++) {
            if (!isdigit((unsigned char)hend[i]))
                return ksv_err_set(err, 400, "%.200s: bad port", address);
            v = v * 10 + (hend[i] - '0');
        }
        if (v < 1 || v > 65535)
            return ksv_err_set(err, 400, "%.200s: port out of range", address);
        *port = (int)v;
    }
    return 0;
}
