/* llm_stats.c: export of a generative revision's token figures (llm_stats.h). */
#include "engine/llm_stats.h"

void ksv_llm_stats_init(ksv_llm_stats *s)
{
    ksv_hist_init(&s->ttft);
    ksv_hist_init(&s->tpot);
    atomic_init(&s->prompt_tokens, 0);
    atomic_init(&s->generation_tokens, 0);
}

void ksv_llm_stats_write_prometheus(ksv_sb *sb, int family, const char *labels,
                                    const ksv_llm_stats *s, ksv_hist_snap *snap)
{
    static const char *const heads[] = {
        "# HELP ksv_llm_time_to_first_token_seconds Time from request to the first generated "
        "token (OpenAI routes).\n# TYPE ksv_llm_time_to_first_token_seconds histogram\n",
        "# HELP ksv_llm_time_per_output_token_seconds Mean time per generated token after the "
        "first, one sample per request.\n"
        "# TYPE ksv_llm_time_per_output_token_seconds histogram\n",
        "# HELP ksv_llm_prompt_tokens_total Prompt tokens of answered requests.\n"
        "# TYPE ksv_llm_prompt_tokens_total counter\n",
        "# HELP ksv_llm_generation_tokens_total Tokens generated.\n"
        "# TYPE ksv_llm_generation_tokens_total counter\n",
    };
    int f = family & 0xf;
    if (f < 0 || f > 3)
        return;
    if (family & 0x10)
        ksv_sb_puts(sb, heads[f]);
    switch (f) {
    case 0:
        ksv_hist_snapshot(&s->ttft, snap);
        ksv_hist_write_prometheus(sb, "ksv_llm_time_to_first_token_seconds", labels, snap);
        break;
    case 1:
        ksv_hist_snapshot(&s->tpot, snap);
        ksv_hist_write_prometheus(sb, "ksv_llm_time_per_output_token_seconds", labels, snap);
        break;
    case 2:
        ksv_sb_printf(sb, "ksv_llm_prompt_tokens_total{%s} %llu\n", labels,
                      (unsigned long long)atomic_load(&s->prompt_tokens));
        break;
    default:
        ksv_sb_printf(sb, "ksv_llm_generation_tokens_total{%s} %llu\n", labels,
                      (unsigned long long)atomic_load(&s->generation_tokens));
        break;
    }
}

void ksv_llm_stats_write_json(ksv_sb *sb, const ksv_llm_stats *s, ksv_hist_snap *snap)
{
    ksv_sb_puts(sb, ",\"ttft\":");
    ksv_hist_snapshot(&s->ttft, snap);
    ksv_hist_write_fine_json(sb, snap);
    ksv_sb_printf(sb, ",\"prompt_tokens\":%llu,\"generation_tokens\":%llu",
                  (unsigned long long)atomic_load(&s->prompt_tokens),
                  (unsigned long long)atomic_load(&s->generation_tokens));
}
