/* ssh_sftp.h: uploading a file to a node into a cache folder named by content.
 *
 * The file lands at REMOTE_DIR/SHA256 (the lowercase hex SHA-256 of its bytes, computed
 * here). Upload goes to REMOTE_DIR/SHA256.part first, appending from the size a previous,
 * interrupted upload left there; the node then checks the part with `sha256sum` and only a
 * matching part is renamed into place. A file already in place with the right size and
 * checksum is not sent again. */
#ifndef KSV_REMOTE_SSH_SFTP_H
#define KSV_REMOTE_SSH_SFTP_H

#include <stdbool.h>

#include "common/error.h"
#include "remote/ssh_session.h"

/* Called after each chunk: bytes of the file now on the node (resumed bytes included),
 * the file's size, and the rate of this upload so far (bytes/s). A nonzero return stops
 * the upload (499); the part file stays and the next upload resumes from it. */
typedef int (*ksv_ssh_progress_fn)(long long done, long long total, double bytes_per_s,
                                   void *arg);

typedef struct ksv_ssh_upload_result {
    char remote_path[1100];     /* REMOTE_DIR/SHA256 */
    char sha256[65];
    long long size;
    long long resumed_from;     /* bytes found in a part file and kept */
    long long sent;             /* bytes sent by this call */
    bool skipped;               /* already there and verified: nothing sent */
} ksv_ssh_upload_result;

/* remote_dir: absolute, or relative to the remote user's home; created when missing.
 * progress may be NULL. Errors: 404 local file missing; 499 stopped by progress; 500
 * checksum mismatch after upload (the part is removed) or an SFTP failure; 503/504 link. */
int ksv_ssh_sftp_upload(ksv_ssh_session *s, const char *local_path, const char *remote_dir,
                        ksv_ssh_progress_fn progress, void *progress_arg,
                        ksv_ssh_upload_result *out, ksv_err *err);

/* Runs `sha256sum` on the node over remote_path: hex gets the 64 hex digits. */
int ksv_ssh_remote_sha256(ksv_ssh_session *s, const char *remote_path, char hex[65],
                          ksv_err *err);

#endif
