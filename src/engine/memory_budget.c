/* memory_budget.c: allocator statistics behind ksv_model_memory_bytes. */
#include "engine/memory_budget.h"

#include <malloc.h>

#if defined(__SANITIZE_ADDRESS__)
#define KSV_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KSV_ASAN 1
#endif
#endif

#ifdef KSV_ASAN
#include <sanitizer/allocator_interface.h>
#endif

uint64_t ksv_mem_allocated_bytes(void)
{
#ifdef KSV_ASAN
    return (uint64_t)__sanitizer_get_current_allocated_bytes();
#else
    /* mallinfo2 sums every arena: small chunks in use plus mmapped large ones. */
    struct mallinfo2 mi = mallinfo2();
    return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
#endif
}

uint64_t ksv_mem_growth(uint64_t before, uint64_t after)
{
    return after > before ? after - before : 0;
}

void ksv_mem_return_to_system(void)
{
#ifndef KSV_ASAN
    malloc_trim(0);
#endif
}
