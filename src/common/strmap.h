/* strmap.h: a hash map from byte-string keys to pointers, for lookups that a linear search
 * made quadratic (a console holding 100 nodes x 20 models x several revisions, a scrape
 * listing tens of thousands of series).
 *
 * Keys are copied (any bytes, length given, so "node\0model\0revision" is one key); values
 * are borrowed pointers the caller owns. Separate chaining with a table that doubles when
 * it holds more entries than buckets: get, put and remove take expected O(1). FNV-1a hash
 * with a per-map seed, so a peer choosing names cannot aim them all at one bucket without
 * knowing it. Not thread-safe: one user at a time. */
#ifndef KSV_COMMON_STRMAP_H
#define KSV_COMMON_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct ksv_strmap_entry ksv_strmap_entry;

typedef struct ksv_strmap {
    ksv_strmap_entry **buckets;
    size_t n_buckets;             /* 0 or a power of two */
    size_t n;
    uint64_t seed;
} ksv_strmap;

/* A zeroed ksv_strmap is an empty map; init also picks the seed. */
void ksv_strmap_init(ksv_strmap *m);
void ksv_strmap_free(ksv_strmap *m);
/* The value under key, NULL when absent. */
void *ksv_strmap_get(const ksv_strmap *m, const void *key, size_t len);
/* Sets key's value (replacing one there). -1 when out of memory (the map is unchanged). */
int ksv_strmap_put(ksv_strmap *m, const void *key, size_t len, void *value);
/* Removes key; returns its value, NULL when absent. */
void *ksv_strmap_remove(ksv_strmap *m, const void *key, size_t len);
static inline size_t ksv_strmap_count(const ksv_strmap *m)
{
    return m->n;
}

#endif
