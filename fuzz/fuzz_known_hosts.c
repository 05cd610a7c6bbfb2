/* fuzz_known_hosts.c: an OpenSSH known_hosts file as ksv reads it (src/remote/ssh_knownhosts.c
 * and libssh2's line parser behind it): the key types it records for a host, and how a
 * presented ed25519 key compares with its entries (match, unknown, changed + line). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libssh2.h>

#include "remote/ssh_knownhosts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The raw host key of the seed's "edge" entry: string "ssh-ed25519", string 32 bytes. */
static const unsigned char ED25519_KEY[] = {
    0, 0, 0, 11, 's', 's', 'h', '-', 'e', 'd', '2', '5', '5', '1', '9', 0, 0, 0, 32,
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* One session for the whole run: the parser needs one, never a connection. */
    static LIBSSH2_SESSION *ssh;
    if (!ssh) {
        libssh2_init(0);
        ssh = libssh2_session_init();
        if (!ssh)
            return 0;
    }
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char methods[256];
    ksv_ssh_known_hosts_methods_text(ssh, text, "edge", 22, methods, sizeof methods);
    ksv_ssh_known_hosts_methods_text(ssh, text, "10.0.0.7", 2222, methods, sizeof methods);
    int line;
    ksv_ssh_known_hosts_check_text(ssh, text, "edge", 22, (const char *)ED25519_KEY,
                                   sizeof ED25519_KEY, LIBSSH2_HOSTKEY_TYPE_ED25519, &line);
    ksv_ssh_known_hosts_check_text(ssh, text, "10.0.0.7", 2222, (const char *)ED25519_KEY,
                                   sizeof ED25519_KEY, LIBSSH2_HOSTKEY_TYPE_ED25519, &line);
    free(text);
    return 0;
}
