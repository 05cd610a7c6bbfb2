/* records.h: freeing an array of records, the one way: each element released with its own
 * clear function, then the array, and the pointer and count reset so a second free is
 * harmless. Used by the manifest lists and, through STORE_LIST_FREE, every store list. */
#ifndef KSV_COMMON_RECORDS_H
#define KSV_COMMON_RECORDS_H

#include <stddef.h>
#include <stdlib.h>

/* items: an lvalue pointer to n records; clear: a function taking a pointer to one. */
#define KSV_RECORDS_FREE(items, n, clear)                                                  \
    do {                                                                                   \
        for (size_t k_ = 0; k_ < (n); k_++)                                                \
            clear(&(items)[k_]);                                                           \
        free(items);                                                                       \
        (items) = NULL;                                                                    \
        (n) = 0;                                                                           \
    } while (0)

#endif
