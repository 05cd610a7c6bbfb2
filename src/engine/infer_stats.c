/* infer_stats.c: Triton-style inference statistics, counted per revision. */
#include "common/clock.h"
#include "engine/infer_stats.h"

#include <time.h>

static uint64_t to_ns(double seconds)
{
    return seconds > 0 ? (uint64_t)(seconds * 1e9 + 0.5) : 0;
}

static void add(ksv_stat_pair *p, double seconds)
{
    atomic_fetch_add_explicit(&p->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->ns, to_ns(seconds), memory_order_relaxed);
}

void ksv_infer_stats_record(ksv_infer_stats *s, bool ok, uint64_t rows, bool batched,
                            const ksv_infer_timing *t, double finished)
{
    atomic_store_explicit(&s->last_inference_ms, (uint64_t)ksv_wall_ms(), memory_order_relaxed);
    if (!ok) {
        add(&s->fail, finished - t->arrived);
        return;
    }
    add(&s->success, finished - t->arrived);
    add(&s->queue, t->decode_start - t->arrived);
    add(&s->compute_input, t->infer_start - t->decode_start);
    add(&s->compute_infer, t->infer_end - t->infer_start);
    add(&s->compute_output, t->encode_end - t->infer_end);
    atomic_fetch_add_explicit(&s->inference_count, rows, memory_order_relaxed);
    if (!batched)
        atomic_fetch_add_explicit(&s->executions, 1, memory_order_relaxed);
}

static void put_pair(ksv_sb *sb, const char *name, const ksv_stat_pair *p, bool last)
{
    ksv_sb_putc(sb, '"');
    ksv_sb_puts(sb, name);
    ksv_sb_puts(sb, "\":{\"count\":");
    ksv_sb_u64(sb, atomic_load_explicit(&p->count, memory_order_relaxed));
    ksv_sb_puts(sb, ",\"ns\":");
    ksv_sb_u64(sb, atomic_load_explicit(&p->ns, memory_order_relaxed));
    ksv_sb_puts(sb, last ? "}" : "},");
}

void ksv_infer_stats_write(ksv_sb *sb, const char *model, const char *version,
                           const ksv_infer_stats *s, uint64_t extra_executions)
{
    static const ksv_stat_pair none; /* the cache: ksv has no response cache */
    ksv_sb_puts(sb, "{\"name\":");
    ksv_sb_json_str(sb, model);
    ksv_sb_puts(sb, ",\"version\":");
    ksv_sb_json_str(sb, version);
    ksv_sb_puts(sb, ",\"last_inference\":");
    ksv_sb_u64(sb, atomic_load_explicit(&s->last_inference_ms, memory_order_relaxed));
    ksv_sb_puts(sb, ",\"inference_count\":");
    ksv_sb_u64(sb, atomic_load_explicit(&s->inference_count, memory_order_relaxed));
    ksv_sb_puts(sb, ",\"execution_count\":");
    ksv_sb_u64(sb, atomic_load_explicit(&s->executions, memory_order_relaxed) +
                       extra_executions);
    ksv_sb_puts(sb, ",\"inference_stats\":{");
    put_pair(sb, "success", &s->success, false);
    put_pair(sb, "fail", &s->fail, false);
    put_pair(sb, "queue", &s->queue, false);
    put_pair(sb, "compute_input", &s->compute_input, false);
    put_pair(sb, "compute_infer", &s->compute_infer, false);
    put_pair(sb, "compute_output", &s->compute_output, false);
    put_pair(sb, "cache_hit", &none, false);
    put_pair(sb, "cache_miss", &none, true);
    ksv_sb_puts(sb, "},\"batch_stats\":[],\"memory_usage\":[]}");
}
