/* ssh_config.h: the part of OpenSSH's client configuration (~/.ssh/config) that ksv honours
 * when it reaches a node over SSH: Host blocks with * and ? patterns (and !negation), and
 * the keys HostName, User, Port and IdentityFile.
 *
 * As in OpenSSH, the first value found for a key wins, scanning the file top to bottom over
 * every Host block whose patterns match the alias; IdentityFile lines add up instead (in
 * order). Match blocks are skipped (their keys never apply); other keys are ignored.
 * HostName accepts %h and %%; IdentityFile accepts ~, %d, %u, %h, %r, %p and %%. */
#ifndef KSV_REMOTE_SSH_CONFIG_H
#define KSV_REMOTE_SSH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

#define KSV_SSH_CONFIG_MAX_IDENTITIES 8
#define KSV_SSH_CONFIG_MAX_BYTES ((size_t)1 << 20)

typedef struct ksv_ssh_host_config {
    char hostname[256];   /* HostName (%h expanded); the alias itself when not set */
    char user[64];        /* "" when not set */
    int port;             /* 0 when not set */
    size_t n_identities;
    char identities[KSV_SSH_CONFIG_MAX_IDENTITIES][1024];   /* expanded paths, in order */
} ksv_ssh_host_config;

/* Looks alias up in the config file at path. path NULL means ~/.ssh/config; a missing file
 * is no error (out then holds the alias and nothing else). remote_user and port are what
 * the caller already knows (NULL / 0 when not), used for %r and %p in IdentityFile.
 * Errors: 400 naming file:line for a malformed line (bad Port, unbalanced quote, a key
 * without a value, an unknown % token); 413 for a file over KSV_SSH_CONFIG_MAX_BYTES. */
int ksv_ssh_config_lookup(const char *path, const char *alias, const char *remote_user,
                          int port, ksv_ssh_host_config *out, ksv_err *err);

/* The same over config text held in memory; origin names it in messages. */
int ksv_ssh_config_lookup_text(const char *text, const char *origin, const char *alias,
                               const char *remote_user, int port, ksv_ssh_host_config *out,
                               ksv_err *err);

/* Splits a node address "ssh://[USER@]HOST[:PORT]" (HOST may be "[IPv6]"; one trailing
 * '/' is allowed) into user ("" when absent), host (brackets removed) and *port (0 when
 * absent). 400 for anything else: another scheme, a path, a password, an empty or odd
 * host name, a port outside 1..65535. */
int ksv_ssh_parse_address(const char *address, char *user, size_t user_cap, char *host,
                          size_t host_cap, int *port, ksv_err *err);

/* OpenSSH's pattern match: * matches any run of characters, ? any one character; the
 * whole of name must match. Case-insensitive, as host names are. */
bool ksv_ssh_pattern_match(const char *pattern, const char *name);

#endif
