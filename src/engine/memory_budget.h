/* memory_budget.h: what a loaded revision costs the node, measured.
 *
 * A revision's host memory is the growth of the allocator's in-use bytes across its load
 * (file read, parse, runtime structures, warm-up inference): the lifecycle thread loads one
 * revision at a time, so other allocations during that window are only requests' short-lived
 * buffers. Under AddressSanitizer the sanitizer's allocator is asked instead of glibc's. */
#ifndef KSV_ENGINE_MEMORY_BUDGET_H
#define KSV_ENGINE_MEMORY_BUDGET_H

#include <stddef.h>
#include <stdint.h>

/* Bytes the process's allocator has handed out and not had back. */
uint64_t ksv_mem_allocated_bytes(void);
/* growth = after - before, clamped at 0 (a load that freed more than it took). */
uint64_t ksv_mem_growth(uint64_t before, uint64_t after);
/* Gives freed heap pages back to the system after unloads, so that the node's resident
 * size drops too. */
void ksv_mem_return_to_system(void);

#endif
