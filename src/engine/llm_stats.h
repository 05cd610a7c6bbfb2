/* llm_stats.h: token-level figures of a revision served by a generative runtime, recorded by
 * the OpenAI routes (openai_api.c) from the stream's chunks or the answer's usage block and
 * exported by the registry (/metrics, /ksv/v1/histograms). Lock-free like ksv_hist. */
#ifndef KSV_ENGINE_LLM_STATS_H
#define KSV_ENGINE_LLM_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/histogram.h"
#include "common/strbuf.h"

typedef struct ksv_llm_stats {
    ksv_hist ttft;                      /* request start -> first generated token, seconds */
    ksv_hist tpot;                      /* mean time per output token after the first */
    _Atomic uint64_t prompt_tokens;
    _Atomic uint64_t generation_tokens;
} ksv_llm_stats;

void ksv_llm_stats_init(ksv_llm_stats *s);

/* The four Prometheus families for one revision (labels: model="..",revision=".."); head
 * is true for the first revision written, which also writes HELP and TYPE lines.
 * family: 0 ttft, 1 tpot, 2 prompt tokens, 3 generation tokens. */
void ksv_llm_stats_write_prometheus(ksv_sb *sb, int family, const char *labels,
                                    const ksv_llm_stats *s, ksv_hist_snap *snap);
/* ,"ttft":FINE_HISTOGRAM,"prompt_tokens":N,"generation_tokens":N for /ksv/v1/histograms. */
void ksv_llm_stats_write_json(ksv_sb *sb, const ksv_llm_stats *s, ksv_hist_snap *snap);

#endif
