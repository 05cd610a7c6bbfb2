/* ssh_sftp.c: resumable, verified uploads into a content-named cache on a node (see
 * ssh_sftp.h). */
#include "common/clock.h"
#include "remote/ssh_sftp.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libssh2_sftp.h>

#include "remote/ssh_session_internal.h"
#include "common/sha256.h"

#define CHUNK 65536

int ksv_ssh_remote_sha256(ksv_ssh_session *s, const char *remote_path, char hex[65],
                          ksv_err *err)
{
    char q[2300], cmd[2400];
    if (ksv_ssh_shell_quote(remote_path, q, sizeof q) != 0)
        return ksv_err_set(err, 400, "remote path too long");
    snprintf(cmd, sizeof cmd, "sha256sum -- %s", q);
    ksv_ssh_exec_result r;
    /* Hashing a large file takes time: allow more than one I/O timeout. */
    if (ksv_ssh_exec(s, cmd, NULL, s->io_timeout_ms * 4, &r, err) != 0)
        return -1;
    int rc = 0;
    size_t n = 0;
    while (n < 64 && isxdigit((unsigned char)r.out[n]))
        n++;
    if (r.exit_status != 0 || n != 64 || (r.out[64] != ' ' && r.out[64] != '\t'))
        rc = ksv_err_set(err, 500, "%s: sha256sum %s failed: %.200s", s->name, remote_path,
                         r.err_len ? r.err_text : r.out);
    else {
        for (size_t i = 0; i < 64; i++)
            hex[i] = (char)tolower((unsigned char)r.out[i]);
        hex[64] = '\0';
    }
    ksv_ssh_exec_result_free(&r);
    return rc;
}

static int sftp_fail(ksv_ssh_session *s, LIBSSH2_SFTP *sftp, int rc, const char *what,
                     const char *path, ksv_err *err)
{
    if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL && sftp)
        return ksv_err_set(err, 500, "%s: %s %s: SFTP status %lu", s->name, what, path,
                           libssh2_sftp_last_error(sftp));
    char detail[300];
    snprintf(detail, sizeof detail, "%s %s", what, path);
    return ksv_ssh_fail(s, rc, 500, detail, err);
}

/* Size of a remote file: 0 with *size, 1 when it does not exist, -1 on errors. */
static int remote_size(ksv_ssh_session *s, LIBSSH2_SFTP *sftp, const char *path,
                       long long *size, ksv_err *err)
{
    LIBSSH2_SFTP_ATTRIBUTES a;
    double deadline = ksv_mono_ms() + (double)s->io_timeout_ms;
    int rc;
    while ((rc = libssh2_sftp_stat_ex(sftp, path, (unsigned)strlen(path), LIBSSH2_SFTP_STAT,
                                      &a)) == LIBSSH2_ERROR_EAGAIN)
        if (ksv_ssh_wait(s, deadline, "SFTP stat", err) != 0)
            return -1;
    if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL &&
        libssh2_sftp_last_error(sftp) == LIBSSH2_FX_NO_SUCH_FILE)
        return 1;
    if (rc != 0)
        return sftp_fail(s, sftp, rc, "stat", path, err);
    *size = (a.flags & LIBSSH2_SFTP_ATTR_SIZE) ? (long long)a.filesize : 0;
    return 0;
}

static int remote_unlink(ksv_ssh_session *s, LIBSSH2_SFTP *sftp, const char *path,
                         ksv_err *err)
{
    double deadline = ksv_mono_ms() + (double)s->io_timeout_ms;
    int rc;
    while ((rc = libssh2_sftp_unlink_ex(sftp, path, (unsigned)strlen(path))) ==
           LIBSSH2_ERROR_EAGAIN)
        if (ksv_ssh_wait(s, deadline, "SFTP unlink", err) != 0)
            return -1;
    if (rc != 0 && !(rc == LIBSSH2_ERROR_SFTP_PROTOCOL &&
                     libssh2_sftp_last_error(sftp) == LIBSSH2_FX_NO_SUCH_FILE))
        return sftp_fail(s, sftp, rc, "unlink", path, err);
    return 0;
}

/* Sends local bytes [offset, size) of fd into the part file. */
static int send_part(ksv_ssh_session *s, LIBSSH2_SFTP *sftp, int fd, const char *part,
                     long long offset, ksv_ssh_progress_fn progress, void *arg,
                     ksv_ssh_upload_result *out, ksv_err *err)
{
    double deadline = ksv_mono_ms() + (double)s->io_timeout_ms;
    unsigned long flags = LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT;
    if (offset == 0)
        flags |= LIBSSH2_FXF_TRUNC;
    LIBSSH2_SFTP_HANDLE *h;
    while (!(h = libssh2_sftp_open_ex(sftp, part, (unsigned)strlen(part), flags, 0644,
                                      LIBSSH2_SFTP_OPENFILE)) &&
           libssh2_session_last_errno(s->ssh) == LIBSSH2_ERROR_EAGAIN)
        if (ksv_ssh_wait(s, deadline, "SFTP open", err) != 0)
            return -1;
    if (!h)
        return sftp_fail(s, sftp, libssh2_session_last_errno(s->ssh), "open", part, err);
    libssh2_sftp_seek64(h, (libssh2_uint64_t)offset);
    if (lseek(fd, (off_t)offset, SEEK_SET) < 0) {
        libssh2_sftp_close_handle(h);
        return ksv_err_set(err, 500, "seek in the local file: %s", strerror(errno));
    }
    double started = ksv_mono_ms();
    long long done = offset;
    int result = 0;
    char *buf = malloc(CHUNK);
    if (!buf)
        result = ksv_err_set(err, 500, "out of memory");
    while (result == 0 && done < out->size) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            result = ksv_err_set(err, 500, "reading the local file: %s",
                                 n < 0 ? strerror(errno) : "it shrank during upload");
            break;
        }
        size_t off = 0;
        deadline = ksv_mono_ms() + (double)s->io_timeout_ms;
        while (result == 0 && off < (size_t)n) {
            ssize_t w = libssh2_sftp_write(h, buf + off, (size_t)n - off);
            if (w == LIBSSH2_ERROR_EAGAIN) {
                if (ksv_ssh_wait(s, deadline, "SFTP write", err) != 0)
                    result = -1;
            } else if (w < 0) {
                result = sftp_fail(s, sftp, (int)w, "write", part, err);
            } else {
                off += (size_t)w;
                done += w;
                out->sent += w;
                deadline = ksv_mono_ms() + (double)s->io_timeout_ms;
            }
        }
        if (result == 0 && progress) {
            double secs = (ksv_mono_ms() - started) / 1e3;
            double rate = secs > 0 ? (double)out->sent / secs : 0;
            if (progress(done, out->size, rate, arg) != 0)
                result = ksv_err_set(err, 499, "%s: upload of %s stopped at %lld of %lld bytes "
                                                "(the next upload resumes from there)",
                                     s->name, part, done, out->size);
        }
    }
    free(buf);
    if (s->broken)
        return -1;   /* the handle dies with the session */
    int rc;
    if (result == 0) {
        deadline = ksv_mono_ms() + (double)s->io_timeout_ms;
        /* fsync@openssh.com where offered; a server without it still gets the close. */
        while ((rc = libssh2_sftp_fsync(h)) == LIBSSH2_ERROR_EAGAIN)
            if (ksv_ssh_wait(s, deadline, "SFTP fsync", err) != 0)
                return -1;
    }
    deadline = ksv_mono_ms() + (double)s->io_timeout_ms;
    while ((rc = libssh2_sftp_close_handle(h)) == LIBSSH2_ERROR_EAGAIN)
        if (ksv_ssh_wait(s, deadline, "SFTP close", err) != 0)
            return -1;
    if (result == 0 && rc != 0)
        return sftp_fail(s, sftp, rc, "close", part, err);
    return result;
}

static int upload(ksv_ssh_session *s, LIBSSH2_SFTP *sftp, int fd, const char *dir,
                  ksv_ssh_progress_fn progress, void *arg, ksv_ssh_upload_result *out,
                  ksv_err *err)
{
    char part[1200];
    snprintf(out->remote_path, sizeof out->remote_path, "%s/%s", dir, out->sha256);
    snprintf(part, sizeof part, "%s.part", out->remote_path);
    long long have = 0;
    int st = remote_size(s, sftp, out->remote_path, &have, err);
    if (st < 0)
        return -1;
    if (st == 0) {
        char hex[65];
        if (have == out->size && ksv_ssh_remote_sha256(s, out->remote_path, hex, err) == 0 &&
            strcmp(hex, out->sha256) == 0) {
            out->skipped = true;
            return 0;
        }
        if (s->broken)
            return -1;
        /* A damaged copy: replace it. */
        if (remote_unlink(s, sftp, out->remote_path, err) != 0)
            return -1;
    }
    long long part_size = 0;
    st = remote_size(s, sftp, part, &part_size, err);
    if (st < 0)
        return -1;
    long long offset = st == 0 && part_size <= out->size ? part_size : 0;
    out->resumed_from = offset;
    if (send_part(s, sftp, fd, part, offset, progress, arg, out, err) != 0)
        return -1;
    char hex[65];
    if (ksv_ssh_remote_sha256(s, part, hex, err) != 0)
        return -1;
    if (strcmp(hex, out->sha256) != 0) {
        ksv_err ignored;
        remote_unlink(s, sftp, part, &ignored);
        return ksv_err_set(err, 500, "%s: %s arrived damaged (sha256 %s on the node, %s "
                                     "here); removed it, upload again",
                           s->name, part, hex, out->sha256);
    }
    double deadline = ksv_mono_ms() + (double)s->io_timeout_ms;
    int rc;
    while ((rc = libssh2_sftp_rename_ex(sftp, part, (unsigned)strlen(part), out->remote_path,
                                        (unsigned)strlen(out->remote_path),
                                        LIBSSH2_SFTP_RENAME_OVERWRITE |
                                            LIBSSH2_SFTP_RENAME_ATOMIC |
                                            LIBSSH2_SFTP_RENAME_NATIVE)) == LIBSSH2_ERROR_EAGAIN)
        if (ksv_ssh_wait(s, deadline, "SFTP rename", err) != 0)
            return -1;
    if (rc != 0)
        return sftp_fail(s, sftp, rc, "rename", part, err);
    return 0;
}

int ksv_ssh_sftp_upload(ksv_ssh_session *s, const char *local_path, const char *remote_dir,
                        ksv_ssh_progress_fn progress, void *progress_arg,
                        ksv_ssh_upload_result *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    if (s->broken)
        return ksv_err_set(err, 503, "%s: the SSH link is down", s->name);
    if (!remote_dir || !*remote_dir || strlen(remote_dir) > 1000)
        return ksv_err_set(err, 400, "upload: bad remote folder");
    if (ksv_sha256_file(local_path, out->sha256, &out->size, err) != 0)
        return -1;
    int fd = open(local_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ksv_err_set(err, 404, "%s: %s", local_path, strerror(errno));

    char q[2100], cmd[2200];
    if (ksv_ssh_shell_quote(remote_dir, q, sizeof q) != 0) {
        close(fd);
        return ksv_err_set(err, 400, "upload: remote folder too long");
    }
    snprintf(cmd, sizeof cmd, "mkdir -p -- %s", q);
    ksv_ssh_exec_result r;
    if (ksv_ssh_exec(s, cmd, NULL, 0, &r, err) != 0) {
        close(fd);
        return -1;
    }
    if (r.exit_status != 0) {
        ksv_err_set(err, 500, "%s: cannot create %s: %.200s", s->name, remote_dir, r.err_text);
        ksv_ssh_exec_result_free(&r);
        close(fd);
        return -1;
    }
    ksv_ssh_exec_result_free(&r);

    double deadline = ksv_mono_ms() + (double)s->io_timeout_ms;
    LIBSSH2_SFTP *sftp;
    while (!(sftp = libssh2_sftp_init(s->ssh)) &&
           libssh2_session_last_errno(s->ssh) == LIBSSH2_ERROR_EAGAIN)
        if (ksv_ssh_wait(s, deadline, "starting SFTP", err) != 0) {
            close(fd);
            return -1;
        }
    if (!sftp) {
        close(fd);
        return ksv_ssh_fail(s, 0, 500, "starting SFTP", err);
    }
    int rc = upload(s, sftp, fd, remote_dir, progress, progress_arg, out, err);
    close(fd);
    if (!s->broken) {
        deadline = ksv_mono_ms() + (double)s->io_timeout_ms;
        while (libssh2_sftp_shutdown(sftp) == LIBSSH2_ERROR_EAGAIN)
            if (ksv_ssh_wait(s, deadline, "closing SFTP", NULL) != 0)
                break;
    }
    /* On a broken session the SFTP channel is freed with the session. */
    return rc;
}
