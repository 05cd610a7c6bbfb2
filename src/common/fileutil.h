/* fileutil.h: whole-file reads, crash-safe writes, folders. */
#ifndef KSV_COMMON_FILEUTIL_H
#define KSV_COMMON_FILEUTIL_H

#include <stddef.h>

#include "common/error.h"

/* Reads a whole file (at most max_bytes) into a NUL-terminated buffer the caller frees.
 * A missing file is status 404. */
int ksv_read_file(const char *path, size_t max_bytes, char **out, size_t *len, ksv_err *err);
/* Writes data to path atomically: a temp file in the same folder, fsync, rename over path,
 * fsync the folder. A crash at any point leaves either the old or the new content. */
int ksv_write_file_atomic(const char *path, const void *data, size_t len, int mode,
                          ksv_err *err);
/* mkdir -p with the given mode for folders it creates. */
int ksv_mkdir_p(const char *path, int mode, ksv_err *err);
/* The user's home folder, as OpenSSH finds it: $HOME, else this uid's entry in the password
 * database, else "/". */
const char *ksv_home_dir(void);

#endif
