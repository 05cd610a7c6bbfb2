/* cache.c: the content-addressed model cache (see cache.h). */
#include "config.h" /* _GNU_SOURCE, for nftw */

#include "engine/cache.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fileutil.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/strbuf.h"

#define MAX_TREE_FILES 100000
#define MAX_TREE_DEPTH 32
#define MANIFEST_MAX (64u << 20)

typedef struct pin {
    char id[65];
    unsigned count;
} pin;

struct ksv_cache {
    char *dir;
    uint64_t max_bytes;
    pthread_mutex_t mu;           /* folder changes, pins, eviction */
    pin *pins;
    size_t n_pins, cap_pins;
    _Atomic unsigned long seq;    /* scratch folder names */
};

typedef struct entry {
    char *rel;                    /* path inside the tree */
    char hex[65];
    long long size;
    bool via_link;                /* a symbolic link in the scratch folder: copy by digest */
} entry;

typedef struct entry_list {
    entry *v;
    size_t n, cap;
} entry_list;

/* ------------------------------------------------------------------------ helpers */

static bool is_hex64(const char *s)
{
    if (!s || strlen(s) != 64)
        return false;
    for (size_t i = 0; i < 64; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return true;
}

static void lower_hex(const char *in, char out[65])
{
    for (size_t i = 0; i < 64; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[64] = '\0';
}

/* Makes room for one more element in a growing array; false when out of memory. */
static bool grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return true;
    size_t nc = *cap ? *cap * 2 : 16;
    void *v = realloc(*arr, nc * elem);
    if (!v)
        return false;
    *arr = v;
    *cap = nc;
    return true;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static void remove_tree_dir(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void ksv_cache_discard(const char *staged)
{
    if (staged && *staged)
        remove_tree_dir(staged);
}

static void entries_free(entry_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].rel);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int entries_push(entry_list *l, const char *rel, ksv_err *err)
{
    if (l->n == MAX_TREE_FILES)
        return ksv_err_set(err, 413, "more than %d files", MAX_TREE_FILES);
    if (!grow((void **)&l->v, &l->cap, l->n, sizeof *l->v))
        return ksv_err_set(err, 500, "out of memory");
    entry *e = &l->v[l->n];
    memset(e, 0, sizeof *e);
    if (!(e->rel = strdup(rel)))
        return ksv_err_set(err, 500, "out of memory");
    l->n++;
    return 0;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->rel, ((const entry *)b)->rel);
}

/* Collects every file under root/rel (recursively), refusing what is not a file, a folder
 * or a link to a file inside root. */
static int walk(const char *root, const char *real_root, const char *rel, int depth,
                entry_list *out, ksv_err *err)
{
    if (depth > MAX_TREE_DEPTH)
        return ksv_err_set(err, 400, "%s: folders nested deeper than %d", rel, MAX_TREE_DEPTH);
    char dirpath[PATH_MAX];
    if ((size_t)snprintf(dirpath, sizeof dirpath, "%s%s%s", root, *rel ? "/" : "", rel) >=
        sizeof dirpath)
        return ksv_err_set(err, 400, "%s: path too long", rel);
    DIR *d = opendir(dirpath);
    if (!d)
        return ksv_err_set(err, 500, "%s: %s", dirpath, strerror(errno));
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char sub[PATH_MAX], full[PATH_MAX];
        if ((size_t)snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name) >=
                sizeof sub ||
            (size_t)snprintf(full, sizeof full, "%s/%s", root, sub) >= sizeof full) {
            rc = ksv_err_set(err, 400, "%s: path too long", de->d_name);
            break;
        }
        for (const unsigned char *c = (const unsigned char *)sub; *c && rc == 0; c++)
            if (*c < 0x20 || *c == 0x7f)
                rc = ksv_err_set(err, 400, "a file name with control characters");
        if (rc)
            break;
        struct stat st;
        if (lstat(full, &st) != 0) {
            rc = ksv_err_set(err, 500, "%s: %s", full, strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            rc = walk(root, real_root, sub, depth + 1, out, err);
        } else if (S_ISREG(st.st_mode)) {
            rc = entries_push(out, sub, err);
            if (rc == 0)
                out->v[out->n - 1].size = st.st_size;
        } else if (S_ISLNK(st.st_mode)) {
            /* Archives may link one file to another; the link must stay inside. */
            char target[PATH_MAX];
            size_t rl = strlen(real_root);
            struct stat ts;
            if (!realpath(full, target) || strncmp(target, real_root, rl) != 0 ||
                target[rl] != '/' || stat(target, &ts) != 0 || !S_ISREG(ts.st_mode)) {
                rc = ksv_err_set(err, 400, "%s: a link that is not to a file inside the model",
                                 sub);
            } else if ((rc = entries_push(out, sub, err)) == 0) {
                out->v[out->n - 1].size = ts.st_size;
                out->v[out->n - 1].via_link = true;
            }
        } else {
            rc = ksv_err_set(err, 400, "%s: not a file or folder", sub);
        }
    }
    closedir(d);
    return rc;
}

/* "HEX  PATH\n" per file, sorted by PATH: what `sha256sum` prints for the sorted list. */
static int manifest_text(entry_list *l, ksv_sb *sb, ksv_err *err)
{
    qsort(l->v, l->n, sizeof *l->v, entry_cmp);
    for (size_t i = 0; i < l->n; i++)
        ksv_sb_printf(sb, "%s  %s\n", l->v[i].hex, l->v[i].rel);
    return sb->oom ? ksv_err_set(err, 500, "out of memory") : 0;
}

static int path_join(char *out, size_t cap, const char *a, const char *b, const char *c)
{
    int n = snprintf(out, cap, "%s/%s%s%s", a, b, c ? "/" : "", c ? c : "");
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* ---------------------------------------------------------------------- pins */

static pin *find_pin(ksv_cache *c, const char *id)
{
    for (size_t i = 0; i < c->n_pins; i++)
        if (strcmp(c->pins[i].id, id) == 0)
            return &c->pins[i];
    return NULL;
}

static int pin_locked(ksv_cache *c, const char *id, ksv_err *err)
{
    pin *p = find_pin(c, id);
    if (p) {
        p->count++;
        return 0;
    }
    if (!grow((void **)&c->pins, &c->cap_pins, c->n_pins, sizeof *c->pins))
        return ksv_err_set(err, 500, "out of memory");
    snprintf(c->pins[c->n_pins].id, sizeof c->pins[0].id, "%s", id);
    c->pins[c->n_pins++].count = 1;
    return 0;
}

void ksv_cache_unpin(ksv_cache *c, const char *id)
{
    if (!c || !id || !*id)
        return;
    pthread_mutex_lock(&c->mu);
    pin *p = find_pin(c, id);
    if (p && --p->count == 0)
        *p = c->pins[--c->n_pins];
    pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------------ eviction */

typedef struct tree_age {
    char id[65];
    struct timespec used;
} tree_age;

static int age_cmp(const void *a, const void *b)
{
    const tree_age *x = a, *y = b;
    if (x->used.tv_sec != y->used.tv_sec)
        return x->used.tv_sec < y->used.tv_sec ? -1 : 1;
    if (x->used.tv_nsec != y->used.tv_nsec)
        return x->used.tv_nsec < y->used.tv_nsec ? -1 : 1;
    return strcmp(x->id, y->id);
}

static uint64_t blob_bytes_locked(ksv_cache *c)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/blobs", c->dir);
    DIR *d = opendir(path);
    uint64_t total = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        char f[PATH_MAX];
        struct stat st;
        if (de->d_name[0] != '.' && path_join(f, sizeof f, path, de->d_name, NULL) == 0 &&
            lstat(f, &st) == 0)
            total += (uint64_t)st.st_size;
    }
    if (d)
        closedir(d);
    return total;
}

/* Removes refs/ entries that name the tree id. */
static void drop_refs_locked(ksv_cache *c, const char *id)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/refs", c->dir);
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        char f[PATH_MAX], *text = NULL;
        ksv_err e;
        if (de->d_name[0] == '.' || path_join(f, sizeof f, path, de->d_name, NULL) != 0 ||
            ksv_read_file(f, 4096, &text, NULL, &e) != 0)
            continue;
        if (strncmp(text, id, 64) == 0)
            unlink(f);
        free(text);
    }
    if (d)
        closedir(d);
}

/* Removes a tree, its manifest and refs, and the blobs only it linked; returns the bytes
 * those blobs held. */
static uint64_t remove_tree_locked(ksv_cache *c, const char *id)
{
    char tree[PATH_MAX], manifest[PATH_MAX];
    snprintf(tree, sizeof tree, "%s/trees/%s", c->dir, id);
    snprintf(manifest, sizeof manifest, "%s/trees/%s.manifest", c->dir, id);
    char *text = NULL;
    ksv_err e;
    ksv_read_file(manifest, MANIFEST_MAX, &text, NULL, &e);
    remove_tree_dir(tree);
    unlink(manifest);
    drop_refs_locked(c, id);
    uint64_t freed = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (strlen(line) >= 64) {
            char hex[65], blob[PATH_MAX];
            memcpy(hex, line, 64);
            hex[64] = '\0';
            struct stat st;
            snprintf(blob, sizeof blob, "%s/blobs/%s", c->dir, hex);
            if (is_hex64(hex) && lstat(blob, &st) == 0 && st.st_nlink == 1 &&
                unlink(blob) == 0)
                freed += (uint64_t)st.st_size;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return freed;
}

static void evict_locked(ksv_cache *c)
{
    if (c->max_bytes == 0)
        return;
    uint64_t total = blob_bytes_locked(c);
    if (total <= c->max_bytes)
        return;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/trees", c->dir);
    DIR *d = opendir(path);
    tree_age *ages = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len != 64 + strlen(".manifest") || strcmp(de->d_name + 64, ".manifest") != 0)
            continue;
        char f[PATH_MAX];
        struct stat st;
        if (path_join(f, sizeof f, path, de->d_name, NULL) != 0 || lstat(f, &st) != 0)
            continue;
        if (!grow((void **)&ages, &cap, n, sizeof *ages))
            break;
        memcpy(ages[n].id, de->d_name, 64);
        ages[n].id[64] = '\0';
        ages[n].used = st.st_mtim;
        n++;
    }
    if (d)
        closedir(d);
    qsort(ages, n, sizeof *ages, age_cmp);
    for (size_t i = 0; i < n && total > c->max_bytes; i++) {
        if (find_pin(c, ages[i].id))
            continue;
        uint64_t freed = remove_tree_locked(c, ages[i].id);
        total = freed > total ? 0 : total - freed;
        ksv_log(KSV_LOG_INFO, NULL, "cache: evicted model %.12s (%llu bytes freed; %llu of "
                                    "%llu used)",
                ages[i].id, (unsigned long long)freed, (unsigned long long)total,
                (unsigned long long)c->max_bytes);
    }
    if (total > c->max_bytes)
        ksv_log(KSV_LOG_WARN, NULL, "cache: %llu bytes used, over --cache-max %llu, all of it "
                                    "held by revisions",
                (unsigned long long)total, (unsigned long long)c->max_bytes);
    free(ages);
}

/* --------------------------------------------------------------- open / close */

const char *ksv_cache_dir(const ksv_cache *c)
{
    return c->dir;
}

uint64_t ksv_cache_bytes(ksv_cache *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t b = blob_bytes_locked(c);
    pthread_mutex_unlock(&c->mu);
    return b;
}

void ksv_cache_write_json(ksv_cache *c, ksv_sb *sb)
{
    pthread_mutex_lock(&c->mu);
    uint64_t bytes = blob_bytes_locked(c);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/trees", c->dir);
    size_t models = 0;
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        models += strlen(de->d_name) == 64 + strlen(".manifest") &&
                  strcmp(de->d_name + 64, ".manifest") == 0;
    if (d)
        closedir(d);
    ksv_sb_printf(sb, "{\"bytes\":%llu,\"max_bytes\":%llu,\"models\":%zu,\"held\":%zu}",
                  (unsigned long long)bytes, (unsigned long long)c->max_bytes, models,
                  c->n_pins);
    pthread_mutex_unlock(&c->mu);
}

/* Startup: scratch folders of a previous run, the old layout (cache/URLHASH/file), and
 * blobs no tree links all go. */
static void sweep_locked(ksv_cache *c)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/staging", c->dir);
    remove_tree_dir(path);
    DIR *d = opendir(c->dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        char f[PATH_MAX];
        if (is_hex64(de->d_name) && path_join(f, sizeof f, c->dir, de->d_name, NULL) == 0)
            remove_tree_dir(f);
    }
    if (d)
        closedir(d);
    /* Partial downloads resume for a day, then go. */
    snprintf(path, sizeof path, "%s/partial", c->dir);
    d = opendir(path);
    time_t now = time(NULL);
    while (d && (de = readdir(d)) != NULL) {
        char f[PATH_MAX];
        struct stat st;
        if (de->d_name[0] != '.' && path_join(f, sizeof f, path, de->d_name, NULL) == 0 &&
            lstat(f, &st) == 0 && now - st.st_mtime > 86400)
            unlink(f);
    }
    if (d)
        closedir(d);
    snprintf(path, sizeof path, "%s/blobs", c->dir);
    d = opendir(path);
    while (d && (de = readdir(d)) != NULL) {
        char f[PATH_MAX];
        struct stat st;
        if (de->d_name[0] != '.' && path_join(f, sizeof f, path, de->d_name, NULL) == 0 &&
            lstat(f, &st) == 0 && (st.st_nlink == 1 || !is_hex64(de->d_name)))
            unlink(f);
    }
    if (d)
        closedir(d);
}

int ksv_cache_open(const char *dir, uint64_t max_bytes, ksv_cache **out, ksv_err *err)
{
    static const char *subdirs[] = {"blobs", "trees", "refs", "staging", "partial"};
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        char path[PATH_MAX];
        if (path_join(path, sizeof path, dir, subdirs[i], NULL) != 0)
            return ksv_err_set(err, 400, "cache %s: path too long", dir);
        if (ksv_mkdir_p(path, 0700, err) != 0)
            return -1;
    }
    ksv_cache *c = calloc(1, sizeof *c);
    if (!c || !(c->dir = strdup(dir))) {
        free(c);
        return ksv_err_set(err, 500, "out of memory");
    }
    c->max_bytes = max_bytes;
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_lock(&c->mu);
    sweep_locked(c);
    /* The scratch folder was just swept away with its contents. */
    char staging[PATH_MAX];
    snprintf(staging, sizeof staging, "%s/staging", dir);
    mkdir(staging, 0700);
    evict_locked(c);
    pthread_mutex_unlock(&c->mu);
    *out = c;
    return 0;
}

void ksv_cache_close(ksv_cache *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c->pins);
    free(c->dir);
    free(c);
}

void ksv_cache_key(const char *uri, const char *expected, char key[65])
{
    ksv_sb sb;
    ksv_sb_init(&sb);
    ksv_sb_printf(&sb, "%s\n", uri);
    for (const char *p = expected ? expected : ""; *p; p++)
        ksv_sb_putc(&sb, (char)tolower((unsigned char)*p));
    ksv_sha256_hex(sb.data ? sb.data : "", sb.len, key);
    ksv_sb_free(&sb);
}

int ksv_cache_partial(ksv_cache *c, const char *name, char *path, size_t cap, ksv_err *err)
{
    if (!is_hex64(name) || (size_t)snprintf(path, cap, "%s/partial/%s", c->dir, name) >= cap)
        return ksv_err_set(err, 400, "cache %s: bad partial name", c->dir);
    return 0;
}

int ksv_cache_stage(ksv_cache *c, char *dir, size_t cap, ksv_err *err)
{
    unsigned long n = atomic_fetch_add(&c->seq, 1);
    if ((size_t)snprintf(dir, cap, "%s/staging/%ld-%lu", c->dir, (long)getpid(), n) >= cap)
        return ksv_err_set(err, 400, "cache %s: path too long", c->dir);
    remove_tree_dir(dir);
    if (mkdir(dir, 0700) != 0)
        return ksv_err_set(err, 500, "%s: %s", dir, strerror(errno));
    return 0;
}

/* ----------------------------------------------------------------- verify */

/* Parses a manifest into entries (rel + hex). */
static int parse_manifest(const char *text, entry_list *out, ksv_err *err)
{
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        if (!nl)
            return ksv_err_set(err, 500, "manifest: unterminated line");
        size_t len = (size_t)(nl - line);
        if (len < 67 || line[64] != ' ' || line[65] != ' ')
            return ksv_err_set(err, 500, "manifest: malformed line");
        char rel[PATH_MAX];
        if (len - 66 >= sizeof rel)
            return ksv_err_set(err, 500, "manifest: path too long");
        memcpy(rel, line + 66, len - 66);
        rel[len - 66] = '\0';
        if (entries_push(out, rel, err) != 0)
            return -1;
        memcpy(out->v[out->n - 1].hex, line, 64);
        out->v[out->n - 1].hex[64] = '\0';
        if (!is_hex64(out->v[out->n - 1].hex))
            return ksv_err_set(err, 500, "manifest: malformed digest");
        line = nl + 1;
    }
    return 0;
}

/* Re-hashes a tree against its manifest, and the manifest against its id. */
static int verify_tree(ksv_cache *c, const char *id, ksv_cache_tree *out, ksv_err *err)
{
    char manifest[PATH_MAX], tree[PATH_MAX];
    snprintf(manifest, sizeof manifest, "%s/trees/%s.manifest", c->dir, id);
    snprintf(tree, sizeof tree, "%s/trees/%s", c->dir, id);
    char *text = NULL;
    size_t len = 0;
    if (ksv_read_file(manifest, MANIFEST_MAX, &text, &len, err) != 0)
        return -1;
    char hex[65];
    ksv_sha256_hex(text, len, hex);
    entry_list l = {0}, actual = {0};
    int rc = strcmp(hex, id) == 0 ? parse_manifest(text, &l, err)
                                  : ksv_err_set(err, 500, "manifest does not match its id");
    free(text);
    char real_tree[PATH_MAX];
    if (rc == 0 && !realpath(tree, real_tree))
        rc = ksv_err_set(err, 500, "%s: %s", tree, strerror(errno));
    if (rc == 0)
        rc = walk(tree, real_tree, "", 0, &actual, err);
    if (rc == 0 && actual.n != l.n)
        rc = ksv_err_set(err, 500, "the folder holds %zu files, its manifest %zu", actual.n, l.n);
    uint64_t bytes = 0;
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        char f[PATH_MAX], got[65];
        long long size = 0;
        if (path_join(f, sizeof f, tree, l.v[i].rel, NULL) != 0)
            rc = ksv_err_set(err, 500, "path too long");
        else if (ksv_sha256_file(f, got, &size, err) != 0)
            rc = -1;
        else if (strcmp(got, l.v[i].hex) != 0)
            rc = ksv_err_set(err, 500, "%s: sha256 %s, its manifest says %s", l.v[i].rel, got,
                             l.v[i].hex);
        bytes += (uint64_t)size;
    }
    if (rc == 0) {
        snprintf(out->id, sizeof out->id, "%s", id);
        snprintf(out->dir, sizeof out->dir, "%s", tree);
        out->files = l.n;
        out->bytes = bytes;
        snprintf(out->single_digest, sizeof out->single_digest, "%s",
                 l.n == 1 && !strchr(l.v[0].rel, '/') ? l.v[0].hex : "");
    }
    entries_free(&l);
    entries_free(&actual);
    return rc;
}

static bool matches_expected(const ksv_cache_tree *t, const char *expected)
{
    if (!expected || !*expected)
        return true;
    char e[65];
    lower_hex(expected, e);
    return strcmp(e, t->id) == 0 || strcmp(e, t->single_digest) == 0;
}

static void touch(const char *path)
{
    utimensat(AT_FDCWD, path, NULL, 0);
}

int ksv_cache_lookup(ksv_cache *c, const char *key, const char *expected, ksv_cache_tree *out,
                     ksv_err *err)
{
    char id[65] = "", ref[PATH_MAX], manifest[PATH_MAX];
    snprintf(ref, sizeof ref, "%s/refs/%s", c->dir, key);
    pthread_mutex_lock(&c->mu);
    char *text = NULL;
    ksv_err rerr;
    if (ksv_read_file(ref, 4096, &text, NULL, &rerr) == 0 && strlen(text) >= 64) {
        memcpy(id, text, 64);
        id[64] = '\0';
    }
    free(text);
    if (!is_hex64(id) && is_hex64(expected))
        lower_hex(expected, id); /* a folder digest names its tree */
    snprintf(manifest, sizeof manifest, "%s/trees/%s.manifest", c->dir, id);
    struct stat st;
    bool present = is_hex64(id) && stat(manifest, &st) == 0;
    if (present && pin_locked(c, id, err) != 0) {
        pthread_mutex_unlock(&c->mu);
        return -1;
    }
    pthread_mutex_unlock(&c->mu);
    if (!present)
        return 0;
    /* Pinned, so no eviction removes it while it is hashed. */
    ksv_err verr;
    if (verify_tree(c, id, out, &verr) != 0 || !matches_expected(out, expected)) {
        ksv_log(KSV_LOG_WARN, NULL, "cache: model %.12s failed its check (%s); fetching again",
                id, verr.msg[0] ? verr.msg : "not the expected digest");
        pthread_mutex_lock(&c->mu);
        pin *p = find_pin(c, id);
        if (p && --p->count == 0)
            *p = c->pins[--c->n_pins];
        if (!find_pin(c, id))
            remove_tree_locked(c, id);
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    touch(manifest);
    (void)err;
    return 1;
}

/* ----------------------------------------------------------------- commit */

static int link_tree(ksv_cache *c, entry_list *l, const char *build, ksv_err *err)
{
    for (size_t i = 0; i < l->n; i++) {
        char dst[PATH_MAX], blob[PATH_MAX];
        if (path_join(dst, sizeof dst, build, l->v[i].rel, NULL) != 0 ||
            (size_t)snprintf(blob, sizeof blob, "%s/blobs/%s", c->dir, l->v[i].hex) >=
                sizeof blob)
            return ksv_err_set(err, 400, "%s: path too long", l->v[i].rel);
        char *slash = strrchr(dst, '/');
        *slash = '\0';
        if (ksv_mkdir_p(dst, 0755, err) != 0)
            return -1;
        *slash = '/';
        if (link(blob, dst) != 0)
            return ksv_err_set(err, 500, "link %s: %s", dst, strerror(errno));
    }
    return 0;
}

int ksv_cache_commit(ksv_cache *c, const char *staged, const char *key, const char *expected,
                     const char *shown, ksv_cache_tree *out, ksv_err *err)
{
    entry_list l = {0};
    ksv_sb manifest;
    ksv_sb_init(&manifest);
    char real_root[PATH_MAX], id[65] = "";
    int rc = realpath(staged, real_root) ? walk(staged, real_root, "", 0, &l, err)
                                         : ksv_err_set(err, 500, "%s: %s", staged,
                                                       strerror(errno));
    if (rc == 0 && l.n == 0)
        rc = ksv_err_set(err, 404, "storage %s: nothing to fetch there", shown);
    /* Hashing, the slow part, runs outside the lock. */
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        char f[PATH_MAX];
        if (path_join(f, sizeof f, staged, l.v[i].rel, NULL) != 0)
            rc = ksv_err_set(err, 400, "path too long");
        else
            rc = ksv_sha256_file(f, l.v[i].hex, NULL, err);
    }
    if (rc == 0)
        rc = manifest_text(&l, &manifest, err);
    if (rc == 0) {
        ksv_sha256_hex(manifest.data, manifest.len, id);
        ksv_cache_tree probe = {.files = l.n};
        snprintf(probe.id, sizeof probe.id, "%s", id);
        if (l.n == 1 && !strchr(l.v[0].rel, '/'))
            snprintf(probe.single_digest, sizeof probe.single_digest, "%s", l.v[0].hex);
        if (!matches_expected(&probe, expected))
            rc = ksv_err_set(err, 400, "storage %s: sha256 mismatch: expected %s, got %s", shown,
                             expected,
                             probe.single_digest[0] ? probe.single_digest : probe.id);
    }
    if (rc != 0) {
        entries_free(&l);
        ksv_sb_free(&manifest);
        ksv_cache_discard(staged);
        return -1;
    }
    char tree[PATH_MAX], build[PATH_MAX], mpath[PATH_MAX], ref[PATH_MAX];
    snprintf(tree, sizeof tree, "%s/trees/%s", c->dir, id);
    snprintf(build, sizeof build, "%s/.build", staged);
    snprintf(mpath, sizeof mpath, "%s/trees/%s.manifest", c->dir, id);
    snprintf(ref, sizeof ref, "%s/refs/%s", c->dir, key);
    pthread_mutex_lock(&c->mu);
    struct stat st;
    /* A tree of these very files already there is rebuilt from the fresh copies, unless a
     * revision holds it (it was checked when taken). */
    bool keep = stat(mpath, &st) == 0 && find_pin(c, id);
    if (!keep)
        remove_tree_locked(c, id);
    /* Files into blobs/; a blob already there is kept only when it still holds its bytes. */
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        char f[PATH_MAX], blob[PATH_MAX], got[65];
        ksv_err herr;
        path_join(f, sizeof f, staged, l.v[i].rel, NULL);
        snprintf(blob, sizeof blob, "%s/blobs/%s", c->dir, l.v[i].hex);
        if (l.v[i].via_link)
            continue;
        if (lstat(blob, &st) == 0 && ksv_sha256_file(blob, got, NULL, &herr) == 0 &&
            strcmp(got, l.v[i].hex) == 0)
            continue;
        if (rename(f, blob) != 0)
            rc = ksv_err_set(err, 500, "rename to %s: %s", blob, strerror(errno));
        else
            chmod(blob, 0444);
    }
    if (rc == 0 && !keep) {
        rc = link_tree(c, &l, build, err);
        if (rc == 0 && rename(build, tree) != 0)
            rc = ksv_err_set(err, 500, "rename to %s: %s", tree, strerror(errno));
        if (rc == 0)
            rc = ksv_write_file_atomic(mpath, manifest.data, manifest.len, 0600, err);
    }
    if (rc == 0) {
        char line[80];
        int n = snprintf(line, sizeof line, "%s\n", id);
        rc = ksv_write_file_atomic(ref, line, (size_t)n, 0600, err);
    }
    if (rc == 0)
        rc = pin_locked(c, id, err);
    if (rc == 0) {
        touch(mpath);
        evict_locked(c);
    }
    pthread_mutex_unlock(&c->mu);
    if (rc == 0) {
        snprintf(out->id, sizeof out->id, "%s", id);
        snprintf(out->dir, sizeof out->dir, "%s", tree);
        out->files = l.n;
        out->bytes = 0;
        for (size_t i = 0; i < l.n; i++)
            out->bytes += (uint64_t)l.v[i].size;
        snprintf(out->single_digest, sizeof out->single_digest, "%s",
                 l.n == 1 && !strchr(l.v[0].rel, '/') ? l.v[0].hex : "");
    }
    entries_free(&l);
    ksv_sb_free(&manifest);
    ksv_cache_discard(staged);
    return rc;
}
