/* table.c: aligned text tables. */
#include "cli/table.h"

#include <stdlib.h>
#include <string.h>

#include "common/sanitize.h"

int ksv_table_init(ksv_table *t, size_t cols, const char *const *headers)
{
    memset(t, 0, sizeof *t);
    t->cols = cols;
    return ksv_table_add(t, headers);
}

int ksv_table_add(ksv_table *t, const char *const *cells)
{
    if (t->rows == t->cap_rows) {
        size_t cap = t->cap_rows ? t->cap_rows * 2 : 16;
        char **p = realloc(t->cells, cap * t->cols * sizeof *p);
        if (!p)
            return -1;
        t->cells = p;
        t->cap_rows = cap;
    }
    for (size_t c = 0; c < t->cols; c++) {
        /* Cells hold text from nodes and files: filtered before the terminal sees them. */
        char *cell = strdup(cells[c] && *cells[c] ? cells[c] : "-");
        t->cells[t->rows * t->cols + c] = cell ? ksv_sanitize(cell) : NULL;
    }
    t->rows++;
    return 0;
}

void ksv_table_print(const ksv_table *t, FILE *out)
{
    size_t *width = calloc(t->cols, sizeof *width);
    if (!width)
        return;
    for (size_t r = 0; r < t->rows; r++)
        for (size_t c = 0; c < t->cols; c++) {
            const char *s = t->cells[r * t->cols + c];
            size_t n = s ? strlen(s) : 1;
            if (n > width[c])
                width[c] = n;
        }
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t c = 0; c < t->cols; c++) {
            const char *s = t->cells[r * t->cols + c];
            if (c + 1 == t->cols)
                fprintf(out, "%s\n", s ? s : "-");
            else
                fprintf(out, "%-*s  ", (int)width[c], s ? s : "-");
        }
    }
    free(width);
}

void ksv_table_free(ksv_table *t)
{
    for (size_t i = 0; i < t->rows * t->cols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}
