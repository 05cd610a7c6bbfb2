/* engine_identity.h: how ksv knows it talks to the engine whose admin token it holds before
 * it sends that token (issue 11, finding 10: a port held by someone else must get nothing).
 *
 * GET /ksv/v1/identity?challenge=C needs no token. The engine answers
 *   {"listen": L, "nonce": N, "proof": P}
 *   P = hex HMAC-SHA-256(token, "ksv-engine-identity-v1\n" C "\n" N "\n" L)
 * where C is the client's fresh random challenge, N the engine's own fresh random nonce and
 * L the address the engine bound. Only a holder of the token can compute P for a challenge
 * it has not seen, so a process that took the port learns nothing to replay; the engine's
 * nonce and the fixed prefix mean the route signs no message a caller chose whole, so it
 * is no signing oracle for anything else; L lets a client that knows where its engine
 * listens (a local or SSH node) refuse a relay to an engine elsewhere. The token itself
 * never travels on this route. The client checks P (remote/engine_client.c) before the
 * first request that carries the token, on the connection that request then uses. */
#ifndef KSV_COMMON_ENGINE_IDENTITY_H
#define KSV_COMMON_ENGINE_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#define KSV_IDENTITY_PATH "/ksv/v1/identity"
#define KSV_IDENTITY_RANDOM_BYTES 32       /* of a challenge or a nonce: 64 hex digits */
#define KSV_IDENTITY_HEX_MIN 32            /* shortest challenge or nonce accepted */
#define KSV_IDENTITY_HEX_MAX 128           /* longest */
#define KSV_IDENTITY_LISTEN_MAX 127

/* Fills out with 2 * bytes lowercase hex digits from the kernel's random source and a NUL
 * (cap >= 2 * bytes + 1). -1 when the kernel gives none. */
int ksv_identity_random_hex(char *out, size_t cap, size_t bytes);
/* Whether s is KSV_IDENTITY_HEX_MIN..KSV_IDENTITY_HEX_MAX lowercase hex digits. */
bool ksv_identity_hex_ok(const char *s);
/* P above, as 64 lowercase hex digits and a NUL. */
void ksv_identity_proof(const char *token, const char *challenge, const char *nonce,
                        const char *listen, char proof[65]);
/* Compares two proofs in time independent of where they differ. */
bool ksv_identity_proof_equal(const char *a, const char *b);

#endif
