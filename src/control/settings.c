/* settings.c: ksv's config file (control.h): settings given once rather than on every
 * command. Today the prices of `ksv cost`. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/control.h"

#define SETTINGS_MAX_BYTES (64 * 1024)

static void config_path(char *out, size_t cap)
{
    const char *env = getenv("KSV_CONFIG"), *xdg = getenv("XDG_CONFIG_HOME"),
               *home = getenv("HOME");
    if (env && *env)
        snprintf(out, cap, "%s", env);
    else if (xdg && *xdg)
        snprintf(out, cap, "%s/ksv/config", xdg);
    else
        snprintf(out, cap, "%s/.config/ksv/config", home && *home ? home : ".");
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static int parse_price(const char *path, int line, const char *key, const char *v,
                       double *out, ksv_err *err)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(d) || d < 0 || d > 1e9)
        return ksv_err_set(err, 1, "%s:%d: %s: expected a price (a number, 0 or more)", path,
                           line, key);
    *out = d;
    return 0;
}

/* The next line of text[0..len) from *pos, NUL-terminated in place (text has room for
 * one byte past len), its length in *n; NULL at the end. */
static char *next_line(char *text, size_t len, size_t *pos, size_t *n)
{
    if (*pos >= len)
        return NULL;
    char *line = text + *pos;
    char *nl = memchr(line, '\n', len - *pos);
    *n = nl ? (size_t)(nl - line) : len - *pos;
    line[*n] = '\0';
    *pos += *n + 1;
    return line;
}

int ksv_ctl_settings_load(ksv_settings *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    config_path(out->path, sizeof out->path);
    FILE *f = fopen(out->path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        return ksv_err_set(err, 1, "cannot read %s: %s", out->path, strerror(errno));
    }
    out->found = true;
    char *text = malloc(SETTINGS_MAX_BYTES + 1);
    if (!text) {
        fclose(f);
        return ksv_err_set(err, 1, "out of memory");
    }
    size_t len = fread(text, 1, SETTINGS_MAX_BYTES + 1, f);
    bool read_error = ferror(f);
    fclose(f);
    int rc = 0;
    if (read_error)
        rc = ksv_err_set(err, 1, "cannot read %s", out->path);
    else if (len > SETTINGS_MAX_BYTES)
        rc = ksv_err_set(err, 1, "%s: larger than %d KiB", out->path, SETTINGS_MAX_BYTES / 1024);
    size_t pos = 0;
    int line_no = 0;
    char *line;
    size_t n;
    while (rc == 0 && (line = next_line(text, len, &pos, &n))) {
        line_no++;
        if (strlen(line) != n) {
            rc = ksv_err_set(err, 1, "%s:%d: a NUL byte", out->path, line_no);
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = ksv_err_set(err, 1, "%s:%d: expected KEY = VALUE", out->path, line_no);
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        if (strcmp(key, "gpu-hour-price") == 0)
            rc = parse_price(out->path, line_no, key, value, &out->gpu_hour_price, err);
        else if (strcmp(key, "gb-hour-price") == 0)
            rc = parse_price(out->path, line_no, key, value, &out->gb_hour_price, err);
        else
            rc = ksv_err_set(err, 1, "%s:%d: unknown setting (known: gpu-hour-price, "
                                     "gb-hour-price)", out->path, line_no);
    }
    free(text);
    return rc;
}
