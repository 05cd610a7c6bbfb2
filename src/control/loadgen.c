/* loadgen.c: the traffic generator (see loadgen.h for the model of a run).
 *
 * One loop on one thread: issue what is due onto free clients of one src/http batch, let
 * it move bytes, harvest finished transfers, then sleep in the batch until the next due time,
 * a socket event, a libcurl timer, the next progress tick or the stop-flag check, whichever
 * is first. */
#include "common/clock.h"
#include "common/random.h"
#include "control/loadgen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http/http_client.h"

/* How often the stop flag is looked at while nothing else wakes the loop. */
#define STOP_CHECK_S 0.05
/* Bounds that keep the time arithmetic (and millisecond conversions) sane. */
#define MAX_DURATION_S 1e7
#define MAX_RPS 1e7
#define MAX_TIMEOUT_S 1e6

typedef struct load_slot {
    ksv_http_client *http;
    double queued;    /* how long the request waited for a free handle after it was due */
    bool busy;
} load_slot;

typedef struct load_run {
    const ksv_load_config *cfg;
    ksv_load_report *rep;
    ksv_http_batch *batch;
    load_slot *slots;
    unsigned nslots;
    unsigned *free_slots;     /* stack of idle slot indexes */
    unsigned nfree;
    const char *body;
    size_t body_len;
    size_t bad_len;           /* the malformed body is the first bad_len bytes of body */
    ksv_sb built;             /* owns a built body */
    uint64_t rng;
    double timeout_s;
    double grace_s;
    double t0;
    double issue_end;
    double free_since;        /* since when some handle has been idle (nfree > 0) */
    uint64_t next_index;      /* rate mode: request i is due at t0 + i / rps */
} load_run;

const char *ksv_load_transport_name(ksv_load_transport kind)
{
    switch (kind) {
    case KSV_LOAD_CONNECT:
        return "connect";
    case KSV_LOAD_TIMEOUT:
        return "timeout";
    case KSV_LOAD_OTHER:
    case KSV_LOAD_TRANSPORT_KINDS:
        break;
    }
    return "other";
}

int ksv_load_make_body(size_t features, const char *input_name, uint64_t seed, ksv_sb *sb,
                       ksv_err *err)
{
    if (features == 0)
        return ksv_err_set(err, 400, "a built request body needs the model's feature count");
    if (features > KSV_LOAD_MAX_FEATURES)
        return ksv_err_set(err, 400, "%zu features is more than the %u a built body allows",
                           features, KSV_LOAD_MAX_FEATURES);
    uint64_t state = seed;
    ksv_sb_puts(sb, "{\"inputs\":[{\"name\":");
    ksv_sb_json_str(sb, input_name ? input_name : KSV_LOAD_DEFAULT_INPUT_NAME);
    ksv_sb_printf(sb, ",\"shape\":[1,%zu],\"datatype\":\"FP32\",\"data\":[", features);
    for (size_t i = 0; i < features; i++) {
        if (i)
            ksv_sb_putc(sb, ',');
        /* Two decimals keep the body short and every value exact enough to read back. */
        ksv_sb_printf(sb, "%.2f", floor(ksv_random_unit(&state) * 1000.0) / 100.0);
    }
    ksv_sb_puts(sb, "]}]}");
    if (sb->oom)
        return ksv_err_set(err, 500, "out of memory building a %zu-feature request body",
                           features);
    return 0;
}

static bool starts_with_nocase(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static int check_config(const ksv_load_config *cfg, ksv_err *err)
{
    if (!cfg->url || !*cfg->url)
        return ksv_err_set(err, 400, "no URL to send load to");
    if (!starts_with_nocase(cfg->url, "http://") && !starts_with_nocase(cfg->url, "https://"))
        return ksv_err_set(err, 400, "load URL must be http:// or https://, not %.200s",
                           cfg->url);
    if (cfg->body && cfg->body_len == 0)
        return ksv_err_set(err, 400, "the request body is empty");
    if (!cfg->body && cfg->features == 0)
        return ksv_err_set(err, 400, "give a request body or the model's feature count");
    if (!isfinite(cfg->duration_s) || cfg->duration_s <= 0 || cfg->duration_s > MAX_DURATION_S)
        return ksv_err_set(err, 400, "duration must be more than 0 and at most %.0f s",
                           MAX_DURATION_S);
    if (!isfinite(cfg->rps) || cfg->rps < 0 || cfg->rps > MAX_RPS)
        return ksv_err_set(err, 400, "rate must be 0 (as fast as possible) up to %.0f req/s",
                           MAX_RPS);
    if (cfg->concurrency > KSV_LOAD_MAX_CONCURRENCY)
        return ksv_err_set(err, 400, "concurrency %u is over the limit of %u",
                           cfg->concurrency, KSV_LOAD_MAX_CONCURRENCY);
    if (!isfinite(cfg->bad_fraction) || cfg->bad_fraction < 0 || cfg->bad_fraction > 1)
        return ksv_err_set(err, 400, "the malformed-request share must be within 0..1");
    if (!isfinite(cfg->timeout_s) || cfg->timeout_s < 0 || cfg->timeout_s > MAX_TIMEOUT_S)
        return ksv_err_set(err, 400, "request timeout must be within 0..%.0f s", MAX_TIMEOUT_S);
    if (!isfinite(cfg->grace_s) || cfg->grace_s < 0 || cfg->grace_s > MAX_TIMEOUT_S)
        return ksv_err_set(err, 400, "grace period must be within 0..%.0f s", MAX_TIMEOUT_S);
    return 0;
}

/* One client per slot; response bodies are not looked at: the status code is the verdict.
 * Engines are reached directly, never via $http_proxy. */
static int setup_slot(load_run *run, load_slot *slot, ksv_err *err)
{
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    ksv_http_options o = {.timeout_ms = (long)ceil(run->timeout_s * 1000.0),
                          .proxy = KSV_HTTP_PROXY_NONE, .max_reply = KSV_HTTP_NO_REPLY_CAP,
                          .http1 = true, .tcp_nodelay = true, .user_agent = "ksv-load",
                          .headers = headers};
    return ksv_http_client_new(&o, &slot->http, err);
}

static int setup(load_run *run, ksv_err *err)
{
    const ksv_load_config *cfg = run->cfg;
    if (cfg->body) {
        run->body = cfg->body;
        run->body_len = cfg->body_len;
    } else {
        if (ksv_load_make_body(cfg->features, cfg->input_name, cfg->seed, &run->built, err) < 0)
            return -1;
        run->body = run->built.data;
        run->body_len = run->built.len;
    }
    /* Half a JSON document is never a valid one (and an empty body is refused too). */
    run->bad_len = run->body_len / 2;
    run->rng = cfg->seed ^ UINT64_C(0x6B73762D6C6F6164);   /* apart from the body's stream */
    run->timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : KSV_LOAD_DEFAULT_TIMEOUT_S;
    run->grace_s = cfg->grace_s > 0 ? cfg->grace_s : KSV_LOAD_DEFAULT_GRACE_S;
    run->nslots = cfg->concurrency ? cfg->concurrency : KSV_LOAD_DEFAULT_CONCURRENCY;

    run->slots = calloc(run->nslots, sizeof *run->slots);
    run->free_slots = calloc(run->nslots, sizeof *run->free_slots);
    if (!run->slots || !run->free_slots)
        return ksv_err_set(err, 500, "out of memory setting up %u connections", run->nslots);
    /* Keep one idle connection per handle so every request after the first reuses one. */
    if (ksv_http_batch_new(run->nslots, &run->batch, err) != 0)
        return -1;
    for (unsigned i = 0; i < run->nslots; i++) {
        if (setup_slot(run, &run->slots[i], err) < 0)
            return -1;
        run->free_slots[run->nfree++] = run->nslots - 1 - i;   /* slot 0 is used first */
    }
    return 0;
}

static void teardown(load_run *run)
{
    /* The batch first: it lets go of the clients still in flight. */
    ksv_http_batch_free(run->batch);
    if (run->slots)
        for (unsigned i = 0; i < run->nslots; i++)
            ksv_http_client_free(run->slots[i].http);
    free(run->slots);
    free(run->free_slots);
    ksv_sb_free(&run->built);
}

static ksv_load_transport classify(ksv_http_failure failure)
{
    switch (failure) {
    case KSV_HTTP_E_CONNECT:
        return KSV_LOAD_CONNECT;
    case KSV_HTTP_E_TIMEOUT:
        return KSV_LOAD_TIMEOUT;
    default:
        return KSV_LOAD_OTHER;
    }
}

static void count_transport(ksv_load_report *rep, ksv_load_transport kind, int code,
                            const char *message)
{
    ksv_load_transport_errors *t = &rep->transport[kind];
    t->count++;
    t->last_curl_code = code;
    snprintf(t->last_message, sizeof t->last_message, "%.255s", message);
    rep->errors++;
}

static void record_latency(ksv_load_report *rep, double seconds)
{
    rep->latency.counts[ksv_hist_bucket_index(seconds)]++;
    rep->latency.count++;
    rep->latency.sum_seconds += seconds;
    if (seconds > rep->max_s)
        rep->max_s = seconds;
}

/* Rate mode charges a request the time from when it was due until a handle was free for it,
 * which is the server's doing; not the generator's own timer slack after that (up to 1 ms:
 * the batch sleeps in whole milliseconds). */
static void send_request(load_run *run, double due, double now)
{
    ksv_load_report *rep = run->rep;
    load_slot *slot = &run->slots[run->free_slots[--run->nfree]];
    double available = run->free_since < now ? run->free_since : now;
    bool bad = run->cfg->bad_fraction > 0 && ksv_random_unit(&run->rng) < run->cfg->bad_fraction;
    ksv_http_call req = {.method = "POST", .url = run->cfg->url, .body = run->body,
                            .body_len = bad ? run->bad_len : run->body_len};
    slot->queued = available > due ? available - due : 0.0;
    rep->sent++;
    if (bad)
        rep->bad_sent++;
    ksv_err err;
    if (ksv_http_batch_add(run->batch, slot->http, &req, slot, &err) != 0) {
        count_transport(rep, KSV_LOAD_OTHER, 0, err.msg);
        run->free_slots[run->nfree++] = (unsigned)(slot - run->slots);
        return;
    }
    slot->busy = true;
}

static double rate_due(const load_run *run, uint64_t index)
{
    return run->t0 + (double)index / run->cfg->rps;
}

static bool may_send_more(const load_run *run)
{
    uint64_t max = run->cfg->max_requests;
    return run->nfree > 0 && (max == 0 || run->rep->sent < max);
}

static void issue_due(load_run *run, double now)
{
    if (run->cfg->rps > 0) {
        while (may_send_more(run)) {
            double due = rate_due(run, run->next_index);
            if (due > now || due >= run->issue_end)
                break;
            run->next_index++;
            send_request(run, due, now);
        }
    } else {
        while (may_send_more(run))
            send_request(run, now, now);
    }
}

static void finish(load_run *run, load_slot *slot, const ksv_http_result *res, double now)
{
    ksv_load_report *rep = run->rep;
    slot->busy = false;
    if (run->nfree == 0)
        run->free_since = now;
    run->free_slots[run->nfree++] = (unsigned)(slot - run->slots);

    if (res->failure != KSV_HTTP_OK) {
        count_transport(rep, classify(res->failure), res->code, res->message);
        return;
    }
    long status = res->status;
    rep->completed++;
    if (status < KSV_LOAD_STATUS_SLOTS)
        rep->status[status]++;
    else
        rep->status_out_of_range++;
    if (status >= 200 && status < 300)
        rep->ok++;
    else
        rep->errors++;

    /* libcurl's own clock for the transfer, plus however long the request waited for a
     * free handle after it was due. */
    record_latency(rep, slot->queued + res->total_s);
}

static unsigned harvest(load_run *run, double now)
{
    unsigned done = 0;
    void *tag;
    ksv_http_result res;
    while (ksv_http_batch_next_done(run->batch, &tag, &res)) {
        finish(run, tag, &res, now);
        done++;
    }
    return done;
}

static void abort_in_flight(load_run *run)
{
    for (unsigned i = 0; i < run->nslots; i++) {
        load_slot *slot = &run->slots[i];
        if (!slot->busy)
            continue;
        ksv_http_batch_abort(run->batch, slot->http);
        slot->busy = false;
        run->free_slots[run->nfree++] = i;
        run->rep->aborted++;
    }
}

static int wait_ms(double from, double until)
{
    double ms = ceil((until - from) * 1000.0);
    if (ms < 0)
        return 0;
    return ms > 1000.0 ? 1000 : (int)ms;
}

typedef struct progress_state {
    double next_at;
    double last_at;
    uint64_t last_completed;
} progress_state;

static void maybe_progress(load_run *run, progress_state *ps, double now)
{
    if (!run->cfg->progress || now < ps->next_at)
        return;
    const ksv_load_report *rep = run->rep;
    ksv_load_progress p = {
        .elapsed_s = now - run->t0,
        .interval_rps = (double)(rep->completed - ps->last_completed) / (now - ps->last_at),
        .sent = rep->sent,
        .completed = rep->completed,
        .errors = rep->errors,
    };
    ps->last_at = now;
    ps->last_completed = rep->completed;
    while (ps->next_at <= now)
        ps->next_at += 1.0;
    run->cfg->progress(&p, run->cfg->progress_user);
}

static void run_loop(load_run *run)
{
    const ksv_load_config *cfg = run->cfg;
    ksv_load_report *rep = run->rep;
    run->t0 = ksv_mono_s();
    run->free_since = run->t0;
    run->issue_end = run->t0 + cfg->duration_s;
    progress_state ps = {.next_at = run->t0 + 1.0, .last_at = run->t0, .last_completed = 0};
    bool issuing = true;
    double drain_end = 0;
    double issue_stopped_at = run->t0;
    double last_end = run->t0;

    for (;;) {
        double now = ksv_mono_s();
        if (issuing) {
            bool stop = cfg->stop && atomic_load(cfg->stop);
            bool capped = cfg->max_requests && rep->sent >= cfg->max_requests;
            if (stop || capped || now >= run->issue_end) {
                /* Requests due inside the window that a free handle could take are still
                 * sent: a loop that woke late (a busy machine) must not drop them. Those
                 * that wait for a handle (the target is slower than the rate) are not:
                 * the window bounds how long the load lasts. */
                if (!stop && !capped)
                    issue_due(run, now);
                issuing = false;
                rep->stopped = stop;
                /* The window's end, not the (slightly later) moment the loop noticed it. */
                issue_stopped_at = now < run->issue_end ? now : run->issue_end;
                drain_end = now + run->grace_s;
            } else {
                issue_due(run, now);
            }
        }
        ksv_http_batch_perform(run->batch);
        now = ksv_mono_s();
        unsigned done = harvest(run, now);
        if (done)
            last_end = now;
        maybe_progress(run, &ps, now);

        bool in_flight = run->nfree < run->nslots;
        if (!issuing && !in_flight)
            break;
        if (!issuing && now >= drain_end) {
            abort_in_flight(run);
            last_end = now;
            break;
        }
        if (done && issuing && cfg->rps == 0)
            continue;   /* refill the freed handles right away */

        double until = now + STOP_CHECK_S;
        if (issuing) {
            if (run->issue_end < until)
                until = run->issue_end;
            if (cfg->rps > 0 && may_send_more(run)) {
                double due = rate_due(run, run->next_index);
                if (due < until)
                    until = due;
            }
        } else if (drain_end < until) {
            until = drain_end;
        }
        if (cfg->progress && ps.next_at < until)
            until = ps.next_at;
        ksv_http_batch_wait(run->batch, wait_ms(now, until));
    }

    rep->elapsed_s = (last_end > issue_stopped_at ? last_end : issue_stopped_at) - run->t0;
}

static void summarize(ksv_load_report *rep)
{
    rep->achieved_rps = rep->elapsed_s > 0 ? (double)rep->completed / rep->elapsed_s : 0.0;
    rep->p50_s = ksv_hist_quantile(&rep->latency, 0.50);
    rep->p99_s = ksv_hist_quantile(&rep->latency, 0.99);
    rep->p999_s = ksv_hist_quantile(&rep->latency, 0.999);
    rep->mean_s = rep->latency.count ? rep->latency.sum_seconds / (double)rep->latency.count
                                     : NAN;
    if (!rep->latency.count)
        rep->max_s = NAN;
}

int ksv_load_run(const ksv_load_config *cfg, ksv_load_report *out, ksv_err *err)
{
    if (!out)
        return ksv_err_set(err, 400, "no report to fill");
    memset(out, 0, sizeof *out);
    ksv_hist_snap_clear(&out->latency);
    out->p50_s = out->p99_s = out->p999_s = out->mean_s = out->max_s = NAN;
    if (!cfg)
        return ksv_err_set(err, 400, "no load configuration");
    if (check_config(cfg, err) < 0)
        return -1;

    load_run run;
    memset(&run, 0, sizeof run);
    run.cfg = cfg;
    run.rep = out;
    ksv_sb_init(&run.built);
    if (setup(&run, err) < 0) {
        teardown(&run);
        return -1;
    }
    out->target_rps = cfg->rps;
    out->duration_s = cfg->duration_s;
    out->concurrency = run.nslots;
    out->bad_fraction = cfg->bad_fraction;
    out->max_s = 0;
    run_loop(&run);
    teardown(&run);
    summarize(out);
    return 0;
}

/* ---- printing ---- */

static void json_number(ksv_sb *sb, double v)
{
    if (isfinite(v))
        ksv_sb_printf(sb, "%.9g", v);
    else
        ksv_sb_puts(sb, "null");
}

static void write_json(const ksv_load_report *r, ksv_sb *sb)
{
    ksv_sb_puts(sb, "{\"target_rps\":");
    json_number(sb, r->target_rps > 0 ? r->target_rps : NAN);
    ksv_sb_puts(sb, ",\"duration_s\":");
    json_number(sb, r->duration_s);
    ksv_sb_printf(sb, ",\"concurrency\":%u,\"bad_fraction\":", r->concurrency);
    json_number(sb, r->bad_fraction);
    ksv_sb_printf(sb, ",\"stopped\":%s", r->stopped ? "true" : "false");
    ksv_sb_printf(sb,
                  ",\"sent\":%llu,\"completed\":%llu,\"ok\":%llu,\"errors\":%llu,"
                  "\"aborted\":%llu,\"bad_sent\":%llu,\"elapsed_s\":",
                  (unsigned long long)r->sent, (unsigned long long)r->completed,
                  (unsigned long long)r->ok, (unsigned long long)r->errors,
                  (unsigned long long)r->aborted, (unsigned long long)r->bad_sent);
    json_number(sb, r->elapsed_s);
    ksv_sb_puts(sb, ",\"achieved_rps\":");
    json_number(sb, r->achieved_rps);
    const char *names[] = {"p50", "p99", "p999", "mean", "max"};
    double values[] = {r->p50_s, r->p99_s, r->p999_s, r->mean_s, r->max_s};
    ksv_sb_puts(sb, ",\"latency_ms\":{");
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        ksv_sb_printf(sb, "%s\"%s\":", i ? "," : "", names[i]);
        json_number(sb, values[i] * 1000.0);
    }
    ksv_sb_puts(sb, "},\"status\":{");
    bool first = true;
    for (int code = 0; code < KSV_LOAD_STATUS_SLOTS; code++) {
        if (!r->status[code])
            continue;
        ksv_sb_printf(sb, "%s\"%d\":%llu", first ? "" : ",", code,
                      (unsigned long long)r->status[code]);
        first = false;
    }
    ksv_sb_printf(sb, "},\"status_out_of_range\":%llu,\"transport_errors\":{",
                  (unsigned long long)r->status_out_of_range);
    for (int k = 0; k < KSV_LOAD_TRANSPORT_KINDS; k++) {
        const ksv_load_transport_errors *t = &r->transport[k];
        ksv_sb_printf(sb, "%s\"%s\":{\"count\":%llu,\"curl_code\":%d,\"message\":",
                      k ? "," : "", ksv_load_transport_name((ksv_load_transport)k),
                      (unsigned long long)t->count, t->last_curl_code);
        ksv_sb_json_str(sb, t->last_message);
        ksv_sb_putc(sb, '}');
    }
    ksv_sb_puts(sb, "}}\n");
}

static void format_ms(char buf[32], double seconds)
{
    if (isfinite(seconds))
        snprintf(buf, 32, "%.1fms", seconds * 1000.0);
    else
        snprintf(buf, 32, "-");
}

static void write_table(const ksv_load_report *r, ksv_sb *sb)
{
    ksv_sb_printf(sb, "requests   sent %llu  completed %llu  ok %llu  errors %llu  aborted %llu",
                  (unsigned long long)r->sent, (unsigned long long)r->completed,
                  (unsigned long long)r->ok, (unsigned long long)r->errors,
                  (unsigned long long)r->aborted);
    if (r->bad_sent)
        ksv_sb_printf(sb, "  malformed on purpose %llu", (unsigned long long)r->bad_sent);
    ksv_sb_printf(sb, "\nrate       achieved %.1f req/s", r->achieved_rps);
    if (r->target_rps > 0)
        ksv_sb_printf(sb, " (target %.1f)", r->target_rps);
    else
        ksv_sb_puts(sb, " (as fast as possible)");
    ksv_sb_printf(sb, "  concurrency %u  elapsed %.2f s%s\n", r->concurrency, r->elapsed_s,
                  r->stopped ? "  (stopped early)" : "");
    char p50[32], p99[32], p999[32], mean[32], max[32];
    format_ms(p50, r->p50_s);
    format_ms(p99, r->p99_s);
    format_ms(p999, r->p999_s);
    format_ms(mean, r->mean_s);
    format_ms(max, r->max_s);
    ksv_sb_printf(sb, "latency    p50 %s  p99 %s  p99.9 %s  mean %s  max %s\n", p50, p99, p999,
                  mean, max);
    ksv_sb_puts(sb, "status    ");
    bool any = false;
    for (int code = 0; code < KSV_LOAD_STATUS_SLOTS; code++) {
        if (!r->status[code])
            continue;
        ksv_sb_printf(sb, " %d: %llu", code, (unsigned long long)r->status[code]);
        any = true;
    }
    if (r->status_out_of_range) {
        ksv_sb_printf(sb, " >=600: %llu", (unsigned long long)r->status_out_of_range);
        any = true;
    }
    ksv_sb_puts(sb, any ? "\n" : " -\n");
    ksv_sb_puts(sb, "transport ");
    for (int k = 0; k < KSV_LOAD_TRANSPORT_KINDS; k++)
        ksv_sb_printf(sb, " %s %llu", ksv_load_transport_name((ksv_load_transport)k),
                      (unsigned long long)r->transport[k].count);
    ksv_sb_putc(sb, '\n');
    for (int k = 0; k < KSV_LOAD_TRANSPORT_KINDS; k++) {
        if (r->transport[k].count)
            ksv_sb_printf(sb, "           last %s error: %s\n",
                          ksv_load_transport_name((ksv_load_transport)k),
                          r->transport[k].last_message);
    }
}

void ksv_load_report_print(const ksv_load_report *report, FILE *out, bool json)
{
    ksv_sb sb;
    ksv_sb_init(&sb);
    if (json)
        write_json(report, &sb);
    else
        write_table(report, &sb);
    if (sb.oom)
        fputs("(out of memory formatting the load report)\n", out);
    else if (sb.len)
        fwrite(sb.data, 1, sb.len, out);
    ksv_sb_free(&sb);
}
