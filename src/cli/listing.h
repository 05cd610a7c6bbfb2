/* listing.h: one column spec per listing, printed as a table (kubectl style) or, with
 * -o json, as a JSON array of objects, so the two never drift apart.
 *
 * A column has a table side (header + cell text) and a JSON side (key + value); either may
 * be left out, which also lets a listing order its JSON keys apart from its table columns
 * (list the column twice: once table-only, once JSON-only). Most columns read a field of
 * the row struct (the KSV_COL_* macros); the rest give a function. */
#ifndef KSV_CLI_LISTING_H
#define KSV_CLI_LISTING_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "cli/cli.h"

typedef enum ksv_col_field {
    KSV_FIELD_NONE,               /* the column's functions say everything */
    KSV_FIELD_STR,                /* char *: NULL is "-" and JSON null */
    KSV_FIELD_CHARS,              /* char []: "" is "-" and JSON "" */
} ksv_col_field;

typedef struct ksv_column {
    const char *header;           /* NULL: JSON only */
    const char *key;              /* NULL: table only */
    ksv_col_field field;
    size_t offset;                /* of the field in the row struct */
    /* The table cell; NULL or "" prints "-". Given a buffer of cap bytes to use or not. */
    const char *(*text)(const void *row, char *buf, size_t cap);
    /* Adds this column's key(s) to the row's JSON object. */
    void (*json)(const void *row, const char *key, json_object *obj);
} ksv_column;

#define KSV_COL_STR(HEADER, KEY, TYPE, FIELD) \
    {HEADER, KEY, KSV_FIELD_STR, offsetof(TYPE, FIELD), NULL, NULL}
#define KSV_COL_CHARS(HEADER, KEY, TYPE, FIELD) \
    {HEADER, KEY, KSV_FIELD_CHARS, offsetof(TYPE, FIELD), NULL, NULL}
#define KSV_COL_FN(HEADER, KEY, TEXT, JSON) {HEADER, KEY, KSV_FIELD_NONE, 0, TEXT, JSON}

/* Prints n rows of row_size bytes each at rows: a table on stdout, or (json) the JSON
 * array on stdout. */
void ksv_listing_print(const ksv_cli *cli, const ksv_column *cols, size_t n_cols,
                       const void *rows, size_t n, size_t row_size);
/* The JSON array alone (the caller owns it), for listings nested in a larger document. */
json_object *ksv_listing_json(const ksv_column *cols, size_t n_cols, const void *rows,
                              size_t n, size_t row_size);
/* The table alone on stdout. */
void ksv_listing_table(const ksv_column *cols, size_t n_cols, const void *rows, size_t n,
                       size_t row_size);

/* JSON helpers for column functions. */
void ksv_json_add_str(json_object *obj, const char *key, const char *s); /* NULL: null */

#endif
