/* sha256.c: SHA-256 as FIPS 180-4 specifies it, one 64-byte block at a time. */
#include "common/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <string.h>

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

static uint32_t rotr(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha256_block(uint32_t state[8], const uint8_t p[64])
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) +
                      sha256_k[i] + w[i];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

void ksv_sha256_init(ksv_sha256 *h)
{
    static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(h->state, initial, sizeof initial);
    h->total_len = 0;
    h->block_len = 0;
}

void ksv_sha256_update(ksv_sha256 *h, const void *data, size_t len)
{
    const uint8_t *p = data;
    h->total_len += len;
    if (h->block_len > 0) {
        size_t take = 64 - h->block_len < len ? 64 - h->block_len : len;
        memcpy(h->block + h->block_len, p, take);
        h->block_len += take;
        p += take;
        len -= take;
        if (h->block_len < 64)
            return;
        sha256_block(h->state, h->block);
        h->block_len = 0;
    }
    for (; len >= 64; p += 64, len -= 64)
        sha256_block(h->state, p);
    memcpy(h->block, p, len);
    h->block_len = len;
}

void ksv_sha256_final(ksv_sha256 *h, uint8_t digest[32])
{
    uint64_t bits = h->total_len * 8;
    uint8_t pad[72] = {0x80};
    /* pad to 56 bytes mod 64, then the length as a 64-bit big-endian number */
    size_t pad_len = h->block_len < 56 ? 56 - h->block_len : 120 - h->block_len;
    for (int i = 0; i < 8; i++)
        pad[pad_len + (size_t)i] = (uint8_t)(bits >> (56 - 8 * i));
    uint64_t total = h->total_len;
    ksv_sha256_update(h, pad, pad_len + 8);
    h->total_len = total;
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(h->state[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(h->state[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(h->state[i] >> 8);
        digest[4 * i + 3] = (uint8_t)h->state[i];
    }
}

void ksv_sha256_hex(const void *data, size_t len, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    ksv_sha256 h;
    uint8_t d[32];
    ksv_sha256_init(&h);
    ksv_sha256_update(&h, data, len);
    ksv_sha256_final(&h, d);
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[64] = '\0';
}

void ksv_sha256_digest_hex(const uint8_t digest[32], char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

int ksv_sha256_file(const char *path, char hex[65], long long *size_out, ksv_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ksv_err_set(err, errno == ENOENT ? 404 : 500, "%s: %s", path, strerror(errno));
    ksv_sha256 c;
    ksv_sha256_init(&c);
    unsigned char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return ksv_err_set(err, 500, "%s: %s", path, strerror(e));
        }
        if (n == 0)
            break;
        ksv_sha256_update(&c, buf, (size_t)n);
    }
    close(fd);
    if (size_out)
        *size_out = (long long)c.total_len;
    uint8_t d[32];
    ksv_sha256_final(&c, d);
    ksv_sha256_digest_hex(d, hex);
    return 0;
}

/* RFC 2104 with SHA-256 (64-byte blocks): H((K ^ opad) || H((K ^ ipad) || msg)), a key
 * longer than a block hashed first. */
void ksv_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                     uint8_t out[32])
{
    uint8_t block[64] = {0}, inner[32];
    if (key_len > sizeof block) {
        ksv_sha256 k;
        ksv_sha256_init(&k);
        ksv_sha256_update(&k, key, key_len);
        ksv_sha256_final(&k, block);
    } else if (key_len > 0) {
        memcpy(block, key, key_len);
    }
    uint8_t pad[64];
    ksv_sha256 h;
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = block[i] ^ 0x36;
    ksv_sha256_init(&h);
    ksv_sha256_update(&h, pad, sizeof pad);
    ksv_sha256_update(&h, msg, msg_len);
    ksv_sha256_final(&h, inner);
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = block[i] ^ 0x5c;
    ksv_sha256_init(&h);
    ksv_sha256_update(&h, pad, sizeof pad);
    ksv_sha256_update(&h, inner, sizeof inner);
    ksv_sha256_final(&h, out);
    /* The padded key is the token: not left on the stack. */
    explicit_bzero(block, sizeof block);
    explicit_bzero(pad, sizeof pad);
}
