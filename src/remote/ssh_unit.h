/* ssh_unit.h: the systemd unit `ksv node add --install` puts on an SSH node, so its engine
 * comes back after a reboot with the state it last applied (the engine restores
 * STATE_DIR/applied.json when it starts). contrib/systemd/ksv-engine.service is the same
 * unit for installs by hand.
 *
 * Where: root's in /etc/systemd/system (the system manager), anyone else's in
 * ~/.config/systemd/user (their user manager, with `loginctl enable-linger` so it starts at
 * boot rather than at first login); $KSV_UNIT_DIR in the node's environment overrides the
 * directory. Where the node runs no systemd, the unit is still written (for later) and the
 * caller starts the engine the plain way; ksv_ssh_unit says which happened. */
#ifndef KSV_REMOTE_SSH_UNIT_H
#define KSV_REMOTE_SSH_UNIT_H

#include <stdbool.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "remote/ssh_session.h"

typedef struct ksv_ssh_unit {
    char path[1100];            /* where it was written on the node */
    bool user;                  /* a user unit (the login is not root) */
    bool systemd;               /* systemctl answered: the node runs systemd */
    bool enabled;               /* enabled (and started, when asked to start) */
    bool linger;                /* a user unit: loginctl enable-linger succeeded */
    char note[256];             /* what systemctl said when it did not succeed */
} ksv_ssh_unit;

/* The unit text for engine_path listening on 127.0.0.1:port with state_dir. 400 when a path
 * holds a character a unit line would have to escape (only A-Z a-z 0-9 / . _ - + @ , = :
 * are written as they are; anything else is refused rather than risk a different command). */
int ksv_ssh_unit_render(const char *engine_path, int port, const char *state_dir, ksv_sb *out,
                        ksv_err *err);

/* Writes the unit on the node and, where systemd runs, reloads it and enables it (start:
 * also starts it now). 0 whatever systemd said (out tells); -1 when the unit could not be
 * written or the link failed. */
int ksv_ssh_unit_install(ksv_ssh_session *s, const char *engine_path, int port,
                         const char *state_dir, bool start, ksv_ssh_unit *out, ksv_err *err);

#endif
