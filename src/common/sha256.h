/* sha256.h: SHA-256 (FIPS 180-4), for revision spec hashes and model file digests.
 * Small and dependency-free. */
#ifndef KSV_COMMON_SHA256_H
#define KSV_COMMON_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct ksv_sha256 {
    uint32_t state[8];
    uint64_t total_len;       /* bytes fed so far */
    uint8_t block[64];
    size_t block_len;
} ksv_sha256;

void ksv_sha256_init(ksv_sha256 *h);
void ksv_sha256_update(ksv_sha256 *h, const void *data, size_t len);
void ksv_sha256_final(ksv_sha256 *h, uint8_t digest[32]);
/* One-shot: writes 64 lowercase hex digits and a NUL. */
void ksv_sha256_hex(const void *data, size_t len, char hex[65]);
/* A finished digest as 64 lowercase hex digits and a NUL. */
void ksv_sha256_digest_hex(const uint8_t digest[32], char hex[65]);
/* HMAC-SHA-256 (RFC 2104): the engine's proof that it holds the admin token. */
void ksv_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                     uint8_t out[32]);
/* Hashes a whole file; *size_out (may be NULL) gets its length. 404/500 on errors. */
int ksv_sha256_file(const char *path, char hex[65], long long *size_out, ksv_err *err);

#endif
