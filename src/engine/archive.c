/* archive.c: unpacking model archives with libarchive, refusing what could escape the
 * folder or fill the disk (see archive.h). */
#include "engine/archive.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>

#define NAME_MAX_BYTES 1024

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

ksv_archive_kind ksv_archive_kind_of(const char *name)
{
    if (ends_with(name, ".tar.gz") || ends_with(name, ".tgz"))
        return KSV_ARCHIVE_TAR_GZ;
    if (ends_with(name, ".tar"))
        return KSV_ARCHIVE_TAR;
    if (ends_with(name, ".zip"))
        return KSV_ARCHIVE_ZIP;
    return KSV_ARCHIVE_NONE;
}

/* Why a name inside the archive cannot be unpacked as given, or NULL when it can. */
const char *ksv_path_unsafe(const char *p)
{
    if (!p || !*p)
        return "an empty or unreadable name";
    if (strlen(p) > NAME_MAX_BYTES)
        return "a name over 1024 bytes";
    if (p[0] == '/')
        return "an absolute path";
    for (const unsigned char *c = (const unsigned char *)p; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return "a name with control characters";
    for (const char *c = p; *c;) {
        size_t len = strcspn(c, "/");
        if (len == 2 && c[0] == '.' && c[1] == '.')
            return "a path that climbs out of the folder (..)";
        c += len;
        c += *c == '/';
    }
    return NULL;
}

/* A symbolic link may only point down into the folder: no absolute target, no "..". With
 * every link pointing down, no chain of links can lead out. */
static const char *bad_link_target(const char *t)
{
    const char *why = ksv_path_unsafe(t);
    if (!why)
        return NULL;
    if (strcmp(why, "an absolute path") == 0 ||
        strcmp(why, "a path that climbs out of the folder (..)") == 0)
        return "a link out of the folder";
    return why;
}

static int refuse(ksv_err *err, const char *name, const char *entry, const char *why)
{
    return ksv_err_set(err, 400, "archive %s: entry \"%.200s\": %s; refused", name,
                       entry ? entry : "?", why);
}

/* Copies one entry's data, counting bytes against the budget. */
static int copy_data(struct archive *in, struct archive *out, const char *name,
                     const char *entry, uint64_t *used, const ksv_archive_limits *lim,
                     ksv_err *err)
{
    uint64_t base = *used, end = 0;
    for (;;) {
        const void *buf;
        size_t size;
        la_int64_t offset;
        int r = archive_read_data_block(in, &buf, &size, &offset);
        if (r == ARCHIVE_EOF)
            return 0;
        if (r < ARCHIVE_WARN)
            return ksv_err_set(err, 400, "archive %s: entry \"%.200s\": %s", name, entry,
                               archive_error_string(in));
        if (lim->cancel && atomic_load(lim->cancel))
            return ksv_err_set(err, 499, "archive %s: unpacking cancelled", name);
        /* Sparse entries count by their logical end, not the bytes actually stored. */
        if (offset < 0 || (uint64_t)offset + size < end)
            return refuse(err, name, entry, "data out of order");
        end = (uint64_t)offset + size;
        *used = base + end;
        if (*used > lim->max_bytes)
            return ksv_err_set(err, 413, "archive %s: unpacks to more than %llu bytes (at "
                                         "entry \"%.200s\"); refused",
                               name, (unsigned long long)lim->max_bytes, entry);
        if (archive_write_data_block(out, buf, size, offset) < ARCHIVE_WARN)
            return ksv_err_set(err, 500, "archive %s: entry \"%.200s\": %s", name, entry,
                               archive_error_string(out));
    }
}

static int extract_entries(struct archive *in, struct archive *out, const char *root,
                           const char *name, const ksv_archive_limits *lim, ksv_err *err)
{
    uint64_t used = 0, entries = 0;
    char full[PATH_MAX], link_full[PATH_MAX];
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(in, &e);
        if (r == ARCHIVE_EOF)
            return 0;
        if (r < ARCHIVE_WARN)
            return ksv_err_set(err, 400, "archive %s: not a readable archive: %s", name,
                               archive_error_string(in));
        if (lim->cancel && atomic_load(lim->cancel))
            return ksv_err_set(err, 499, "archive %s: unpacking cancelled", name);
        if (++entries > lim->max_entries)
            return ksv_err_set(err, 413, "archive %s: more than %llu entries; refused", name,
                               (unsigned long long)lim->max_entries);
        const char *why = ksv_path_unsafe(archive_entry_pathname(e));
        if (why)
            return refuse(err, name, archive_entry_pathname(e), why);
        /* Kept: the entry's own copy is replaced by the full path below. */
        char path[NAME_MAX_BYTES + 1];
        snprintf(path, sizeof path, "%s", archive_entry_pathname(e));
        mode_t type = archive_entry_filetype(e);
        const char *hardlink = archive_entry_hardlink(e);
        if (hardlink && (why = ksv_path_unsafe(hardlink)))
            return refuse(err, name, path, why);
        if (type == AE_IFLNK && (why = bad_link_target(archive_entry_symlink(e))))
            return refuse(err, name, path, why);
        if (!hardlink && type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
            return refuse(err, name, path, "not a file, folder or link");
        if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0 &&
            (uint64_t)archive_entry_size(e) > lim->max_bytes - used)
            return ksv_err_set(err, 413, "archive %s: entry \"%.200s\" declares %lld bytes, "
                                         "more than the %llu allowed; refused",
                               name, path, (long long)archive_entry_size(e),
                               (unsigned long long)lim->max_bytes);
        if ((size_t)snprintf(full, sizeof full, "%s/%s", root, path) >= sizeof full)
            return refuse(err, name, path, "too long a path");
        archive_entry_copy_pathname(e, full);
        if (hardlink) {
            if ((size_t)snprintf(link_full, sizeof link_full, "%s/%s", root, hardlink) >=
                sizeof link_full)
                return refuse(err, name, path, "too long a link");
            archive_entry_copy_hardlink(e, link_full);
        }
        /* Plain permissions: no set-id bits, owner-writable. */
        archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
        if (archive_write_header(out, e) < ARCHIVE_WARN)
            return ksv_err_set(err, 400, "archive %s: entry \"%.200s\": %s; refused", name,
                               path, archive_error_string(out));
        if (type == AE_IFREG && copy_data(in, out, name, path, &used, lim, err) != 0)
            return -1;
        if (archive_write_finish_entry(out) < ARCHIVE_WARN)
            return ksv_err_set(err, 500, "archive %s: entry \"%.200s\": %s", name, path,
                               archive_error_string(out));
    }
}

int ksv_archive_extract(const char *archive_path, ksv_archive_kind kind, const char *dest_dir,
                        const char *name, const ksv_archive_limits *lim, ksv_err *err)
{
    /* The real path, so that the secure-symlink check meets no link of ours above it. */
    char root[PATH_MAX];
    if (!realpath(dest_dir, root))
        return ksv_err_set(err, 500, "%s: %s", dest_dir, strerror(errno));
    struct archive *in = archive_read_new(), *out = archive_write_disk_new();
    if (!in || !out) {
        archive_read_free(in);
        archive_write_free(out);
        return ksv_err_set(err, 500, "out of memory");
    }
    switch (kind) {
    case KSV_ARCHIVE_TAR_GZ:
        archive_read_support_filter_gzip(in);
        /* fall through */
    case KSV_ARCHIVE_TAR:
        archive_read_support_format_tar(in);
        break;
    case KSV_ARCHIVE_ZIP:
        archive_read_support_format_zip(in);
        break;
    case KSV_ARCHIVE_NONE:
        break;
    }
    archive_write_disk_set_options(out, ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                            ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                            ARCHIVE_EXTRACT_NO_OVERWRITE);
    int rc;
    if (kind == KSV_ARCHIVE_NONE)
        rc = ksv_err_set(err, 400, "archive %s: not a .tar, .tar.gz, .tgz or .zip", name);
    else if (archive_read_open_filename(in, archive_path, 64 * 1024) != ARCHIVE_OK)
        rc = ksv_err_set(err, 400, "archive %s: %s", name, archive_error_string(in));
    else
        rc = extract_entries(in, out, root, name, lim, err);
    archive_read_free(in);
    archive_write_free(out);
    return rc;
}
