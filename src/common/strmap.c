/* strmap.c: see strmap.h. */
#include "common/strmap.h"

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

struct ksv_strmap_entry {
    ksv_strmap_entry *next;
    uint64_t hash;
    void *value;
    size_t len;
    unsigned char key[];
};

static uint64_t hash_bytes(uint64_t seed, const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    /* FNV's low bits mix poorly; the table indexes by them. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

void ksv_strmap_init(ksv_strmap *m)
{
    memset(m, 0, sizeof *m);
    /* A per-map seed, so a peer cannot pick keys that all collide. */
    m->seed = (uint64_t)ksv_mono_ns() * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)m;
}

void ksv_strmap_free(ksv_strmap *m)
{
    for (size_t b = 0; b < m->n_buckets; b++) {
        ksv_strmap_entry *e = m->buckets[b];
        while (e) {
            ksv_strmap_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    uint64_t seed = m->seed;
    memset(m, 0, sizeof *m);
    m->seed = seed;
}

static ksv_strmap_entry **slot_of(const ksv_strmap *m, const void *key, size_t len, uint64_t h)
{
    ksv_strmap_entry **p = &m->buckets[h & (m->n_buckets - 1)];
    while (*p && !((*p)->hash == h && (*p)->len == len && memcmp((*p)->key, key, len) == 0))
        p = &(*p)->next;
    return p;
}

void *ksv_strmap_get(const ksv_strmap *m, const void *key, size_t len)
{
    if (m->n == 0)
        return NULL;
    ksv_strmap_entry *e = *slot_of(m, key, len, hash_bytes(m->seed, key, len));
    return e ? e->value : NULL;
}

static int grow(ksv_strmap *m)
{
    size_t n = m->n_buckets ? m->n_buckets * 2 : 16;
    ksv_strmap_entry **b = calloc(n, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i < m->n_buckets; i++) {
        ksv_strmap_entry *e = m->buckets[i];
        while (e) {
            ksv_strmap_entry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->n_buckets = n;
    return 0;
}

int ksv_strmap_put(ksv_strmap *m, const void *key, size_t len, void *value)
{
    if (m->n >= m->n_buckets && grow(m) != 0 && m->n_buckets == 0)
        return -1; /* a failed grow of a non-empty table only makes chains longer */
    uint64_t h = hash_bytes(m->seed, key, len);
    ksv_strmap_entry **p = slot_of(m, key, len, h);
    if (*p) {
        (*p)->value = value;
        return 0;
    }
    ksv_strmap_entry *e = malloc(sizeof *e + (len ? len : 1));
    if (!e)
        return -1;
    e->next = NULL;
    e->hash = h;
    e->value = value;
    e->len = len;
    memcpy(e->key, key, len);
    *p = e;
    m->n++;
    return 0;
}

void *ksv_strmap_remove(ksv_strmap *m, const void *key, size_t len)
{
    if (m->n == 0)
        return NULL;
    ksv_strmap_entry **p = slot_of(m, key, len, hash_bytes(m->seed, key, len));
    ksv_strmap_entry *e = *p;
    if (!e)
        return NULL;
    *p = e->next;
    void *value = e->value;
    free(e);
    m->n--;
    return value;
}
