/* fuzz_prom_text.c: the Prometheus text-format parser ksv-top and `ksv get` read
 * /metrics with (src/control/prom_text.c), and the extraction of ksv's series. */
#include <stddef.h>
#include <stdint.h>

#include "control/prom_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ksv_prom_limits limits = {.max_line = 4096, .max_samples = 10000, .max_labels = 32};
    ksv_prom_doc doc;
    ksv_err err;
    if (ksv_prom_parse((const char *)data, size, &limits, &doc, &err) == 0) {
        ksv_prom_rev_list revs;
        if (ksv_prom_extract_ksv(&doc, &revs, &err) == 0)
            ksv_prom_rev_list_free(&revs);
    }
    ksv_prom_doc_free(&doc);
    return 0;
}
