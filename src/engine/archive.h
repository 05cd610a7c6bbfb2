/* archive.h: unpacking a model archive (.tar, .tar.gz, .tgz, .zip) with libarchive, as
 * KServe's storage initializer does for http(s) URIs, without trusting the archive:
 *
 *   - an entry named with an absolute path or a `..` component is refused;
 *   - a symbolic link whose target is absolute or climbs (`..`) is refused, so no link can
 *     point out of the folder, however links chain; nothing is written through a link;
 *   - hard links may only name entries inside the archive; devices, FIFOs and sockets are
 *     refused;
 *   - the bytes written are counted as they are unpacked, and the archive is refused once
 *     they pass max_bytes (a zip bomb stops there, whatever its headers claim), as it is
 *     at once when an entry's declared size alone is over what is left;
 *   - at most max_entries entries.
 * A refused archive leaves nothing usable: the caller unpacks into a scratch folder and
 * removes it on failure. */
#ifndef KSV_ENGINE_ARCHIVE_H
#define KSV_ENGINE_ARCHIVE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

typedef enum {
    KSV_ARCHIVE_NONE = 0,
    KSV_ARCHIVE_TAR,
    KSV_ARCHIVE_TAR_GZ,
    KSV_ARCHIVE_ZIP,
} ksv_archive_kind;

/* Why a relative path from outside (an archive entry, an object key) cannot be used as a
 * path inside a folder (absolute, a ".." component, control characters, empty or over 1024
 * bytes), or NULL when it can. */
const char *ksv_path_unsafe(const char *rel);

/* The archive kind a file name ends with (.tar, .tar.gz, .tgz, .zip), or NONE. */
ksv_archive_kind ksv_archive_kind_of(const char *name);

typedef struct ksv_archive_limits {
    uint64_t max_bytes;           /* total bytes unpacked */
    uint64_t max_entries;
    const atomic_bool *cancel;    /* optional: stops the unpacking */
} ksv_archive_limits;

/* Unpacks archive_path (of the given kind) into dest_dir, which must exist and be empty.
 * name is what error messages call the archive (its URI). On failure err says which entry
 * and why (status 400 for a refused archive). */
int ksv_archive_extract(const char *archive_path, ksv_archive_kind kind, const char *dest_dir,
                        const char *name, const ksv_archive_limits *lim, ksv_err *err);

#endif
