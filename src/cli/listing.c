/* listing.c: tables and JSON arrays from one column spec (listing.h). */
#include "cli/listing.h"

#include <string.h>

#include "cli/table.h"

void ksv_json_add_str(json_object *obj, const char *key, const char *s)
{
    json_object_object_add(obj, key, s ? json_object_new_string(s) : NULL);
}

static const void *row_at(const void *rows, size_t i, size_t row_size)
{
    return (const char *)rows + i * row_size;
}

static const char *field_text(const ksv_column *c, const void *row, char *buf, size_t cap)
{
    const char *base = row;
    switch (c->field) {
    case KSV_FIELD_STR:
        return *(const char *const *)(const void *)(base + c->offset);
    case KSV_FIELD_CHARS:
        return base + c->offset;
    default:
        return c->text ? c->text(row, buf, cap) : NULL;
    }
}

void ksv_listing_table(const ksv_column *cols, size_t n_cols, const void *rows, size_t n,
                       size_t row_size)
{
    const char *headers[32];
    size_t shown[32], k = 0;
    for (size_t c = 0; c < n_cols && k < 32; c++)
        if (cols[c].header) {
            headers[k] = cols[c].header;
            shown[k++] = c;
        }
    ksv_table t;
    ksv_table_init(&t, k, headers);
    char bufs[32][512];
    for (size_t i = 0; i < n; i++) {
        const void *row = row_at(rows, i, row_size);
        const char *cells[32];
        for (size_t j = 0; j < k; j++)
            cells[j] = field_text(&cols[shown[j]], row, bufs[j], sizeof bufs[j]);
        ksv_table_add(&t, cells);
    }
    ksv_table_print(&t, stdout);
    ksv_table_free(&t);
}

json_object *ksv_listing_json(const ksv_column *cols, size_t n_cols, const void *rows,
                              size_t n, size_t row_size)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        const void *row = row_at(rows, i, row_size);
        json_object *o = json_object_new_object();
        for (size_t c = 0; c < n_cols; c++) {
            const ksv_column *col = &cols[c];
            if (!col->key)
                continue;
            if (col->json) {
                col->json(row, col->key, o);
            } else if (col->field == KSV_FIELD_CHARS) {
                json_object_object_add(o, col->key,
                                       json_object_new_string((const char *)row + col->offset));
            } else {
                char buf[512];
                ksv_json_add_str(o, col->key, field_text(col, row, buf, sizeof buf));
            }
        }
        json_object_array_add(arr, o);
    }
    return arr;
}

void ksv_listing_print(const ksv_cli *cli, const ksv_column *cols, size_t n_cols,
                       const void *rows, size_t n, size_t row_size)
{
    if (cli->json) {
        json_object *arr = ksv_listing_json(cols, n_cols, rows, n, row_size);
        ksv_cli_print_json(arr);
        json_object_put(arr);
    } else {
        ksv_listing_table(cols, n_cols, rows, n, row_size);
    }
}
