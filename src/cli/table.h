/* table.h: aligned text tables for the CLI (kubectl style: upper-case headers, two spaces
 * between columns). Cells are copied; the table owns them. */
#ifndef KSV_CLI_TABLE_H
#define KSV_CLI_TABLE_H

#include <stddef.h>
#include <stdio.h>

typedef struct ksv_table {
    size_t cols;
    size_t rows;                  /* including the header */
    char **cells;                 /* rows * cols */
    size_t cap_rows;
} ksv_table;

int ksv_table_init(ksv_table *t, size_t cols, const char *const *headers);
/* Adds a row of exactly t->cols cells (NULL prints "-"). */
int ksv_table_add(ksv_table *t, const char *const *cells);
void ksv_table_print(const ksv_table *t, FILE *out);
void ksv_table_free(ksv_table *t);

#endif
