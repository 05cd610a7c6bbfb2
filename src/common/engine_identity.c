/* engine_identity.c: the engine's proof that it holds the admin token (engine_identity.h). */
#include "common/engine_identity.h"

#include <string.h>
#include <sys/random.h>

#include "common/sha256.h"
#include "common/strbuf.h"

int ksv_identity_random_hex(char *out, size_t cap, size_t bytes)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char raw[KSV_IDENTITY_HEX_MAX / 2];
    if (bytes > sizeof raw || cap < 2 * bytes + 1)
        return -1;
    size_t got = 0;
    while (got < bytes) {
        ssize_t n = getrandom(raw + got, bytes - got, 0);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    for (size_t i = 0; i < bytes; i++) {
        out[2 * i] = digits[raw[i] >> 4];
        out[2 * i + 1] = digits[raw[i] & 15];
    }
    out[2 * bytes] = '\0';
    return 0;
}

bool ksv_identity_hex_ok(const char *s)
{
    size_t n = 0;
    for (; s && s[n]; n++) {
        char c = s[n];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) || n >= KSV_IDENTITY_HEX_MAX)
            return false;
    }
    return n >= KSV_IDENTITY_HEX_MIN;
}

void ksv_identity_proof(const char *token, const char *challenge, const char *nonce,
                        const char *listen, char proof[65])
{
    ksv_sb msg;
    ksv_sb_init(&msg);
    ksv_sb_printf(&msg, "ksv-engine-identity-v1\n%s\n%s\n%s", challenge, nonce, listen);
    uint8_t mac[32];
    if (msg.oom) {
        proof[0] = '\0'; /* no memory: a proof that equals nothing (proof_equal) */
        ksv_sb_free(&msg);
        return;
    }
    ksv_hmac_sha256(token, strlen(token), msg.data, msg.len, mac);
    ksv_sb_free(&msg);
    ksv_sha256_digest_hex(mac, proof);
}

bool ksv_identity_proof_equal(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    unsigned char diff = (unsigned char)(n != m || n == 0);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ (i < m ? b[i] : 0));
    return diff == 0;
}
