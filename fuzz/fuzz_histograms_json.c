/* fuzz_histograms_json.c: an engine's GET /ksv/v1/histograms answer as the console reads
 * it (src/control/metrics_window.c, src/common/histogram.c). */
#include <stddef.h>
#include <stdint.h>

#include "control/metrics_window.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ksv_scrape scrape;
    ksv_err err;
    if (ksv_scrape_parse_histograms_json((const char *)data, size, &scrape, &err) == 0)
        ksv_scrape_free(&scrape);
    return 0;
}
