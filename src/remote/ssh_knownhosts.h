/* ssh_knownhosts.h: checking a node's SSH host key against an OpenSSH known_hosts file.
 *
 * Entries are read as OpenSSH writes them: plain names, "[host]:port" for ports other
 * than 22, comma lists and hashed names (|1|salt|hash). Lines that libssh2 cannot parse
 * and @cert-authority / @revoked lines are skipped. A key the file does not know is
 * refused unless trust_new, which appends it ("[host]:port TYPE BASE64"); a key that
 * differs from the recorded one is always refused, with a message naming file:line. */
#ifndef KSV_REMOTE_SSH_KNOWNHOSTS_H
#define KSV_REMOTE_SSH_KNOWNHOSTS_H

#include <stdbool.h>
#include <stddef.h>

#include <libssh2.h>

#include "common/error.h"

typedef struct ksv_ssh_host_key {
    char type[32];          /* "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa", ... */
    char sha256[64];        /* "SHA256:" + unpadded base64, as ssh-keygen -l shows it */
    bool added;             /* trust_new appended it to the file */
} ksv_ssh_host_key;

/* Before the handshake: asks the server for the key types the file holds for host:port
 * (as OpenSSH does), so a host known by its ed25519 key is not reported unknown because
 * the server offered its ECDSA key first. Does nothing for an unknown host or a missing
 * file. 500 only when libssh2 refuses the preference. */
int ksv_ssh_known_hosts_prefer(LIBSSH2_SESSION *ssh, const char *file, const char *host,
                               int port, ksv_err *err);

/* After the handshake: 0 when the server's key is the one recorded for host:port (or was
 * just recorded, trust_new). 403 unknown host (not trust_new) or changed key; 500 when the
 * file cannot be read or written. key (may be NULL) is filled in every case. */
int ksv_ssh_known_hosts_verify(LIBSSH2_SESSION *ssh, const char *file, const char *host,
                               int port, bool trust_new, ksv_ssh_host_key *key, ksv_err *err);

/* The two checks above on known_hosts text already read (no I/O, so the parsing can be
 * fuzzed: fuzz/fuzz_known_hosts.c). text may be NULL (no file). */
/* The host key algorithms text records for host:port, comma-separated; "" when none. */
void ksv_ssh_known_hosts_methods_text(LIBSSH2_SESSION *ssh, const char *text,
                                      const char *host, int port, char *methods, size_t cap);
enum {
    KSV_KNOWN_HOST_MATCH = 0,     /* the entry for host:port holds this key */
    KSV_KNOWN_HOST_UNKNOWN = 1,   /* no entry for host:port with this key type */
    KSV_KNOWN_HOST_CHANGED = 2,   /* an entry holds another key (*line: its line number) */
    KSV_KNOWN_HOST_ERROR = -1,    /* a key type ksv cannot check, no key, or no memory */
};
/* How key (raw, as the server sent it; hostkey_type LIBSSH2_HOSTKEY_TYPE_*) compares with
 * the entries of text for host:port. */
int ksv_ssh_known_hosts_check_text(LIBSSH2_SESSION *ssh, const char *text, const char *host,
                                   int port, const char *key, size_t keylen, int hostkey_type,
                                   int *line);

#endif
