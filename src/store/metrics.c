/* metrics.c: metric samples scraped from engines, their per-minute rollups and bounded
 * retention (raw 24 h, rollups 30 days).
 *
 * A sample holds increments over (at - span, at], so a minute's rollup is the plain sum of
 * its samples, histogram buckets included. Fine-histogram buckets are stored sparse in a
 * BLOB: for each non-zero bucket, varint(gap from the previous one's index + 1), then
 * varint(count), indexes ascending; unsigned LEB128 varints. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "store/store_internal.h"

#define SAMPLE_COLUMNS                                                                     \
    "at, span, node, model, revision, requests_2xx, requests_4xx, requests_5xx, "          \
    "requests_other, latency_sum, buckets"
/* A rollup read as a sample: its span is always one minute. */
#define ROLLUP_COLUMNS                                                                     \
    "at, 60000, node, model, revision, requests_2xx, requests_4xx, requests_5xx, "         \
    "requests_other, latency_sum, buckets"

static void put_varint(ksv_sb *sb, uint64_t v)
{
    do {
        unsigned char byte = v & 0x7f;
        v >>= 7;
        ksv_sb_putc(sb, (char)(v ? byte | 0x80 : byte));
    } while (v);
}

static int get_varint(const unsigned char *p, size_t len, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*pos >= len)
            return -1;
        unsigned char byte = p[(*pos)++];
        if (shift == 63 && (byte & 0x7e))
            return -1; /* more than 64 bits */
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

static void encode_buckets(const uint64_t *b, size_t n, ksv_sb *sb)
{
    size_t next = 0;
    for (size_t i = 0; i < n; i++) {
        if (!b[i])
            continue;
        put_varint(sb, i - next);
        put_varint(sb, b[i]);
        next = i + 1;
    }
}

/* Decodes into a fresh dense array (*b NULL when empty). -1 on a malformed blob. */
static int decode_buckets(const unsigned char *p, size_t len, uint64_t **b, size_t *n)
{
    *b = NULL;
    *n = 0;
    size_t pos = 0, next = 0;
    uint64_t gap, count;
    /* first pass: validate and find the length */
    while (pos < len) {
        if (get_varint(p, len, &pos, &gap) < 0 || get_varint(p, len, &pos, &count) < 0 ||
            count == 0 || gap >= KSV_STORE_MAX_BUCKETS - next)
            return -1;
        next += (size_t)gap + 1;
    }
    if (next == 0)
        return 0;
    *b = calloc(next, sizeof **b);
    if (!*b)
        return -1;
    *n = next;
    pos = 0;
    next = 0;
    while (pos < len) {
        get_varint(p, len, &pos, &gap);
        get_varint(p, len, &pos, &count);
        next += (size_t)gap;
        (*b)[next++] = count;
    }
    return 0;
}

static int check_sample(const ksv_metric_sample *m, ksv_err *err)
{
    if (m->at_ms <= 0 || m->span_ms <= 0)
        return ksv_err_set(err, 400, "a metric sample needs a positive time and span");
    if (!m->node || !*m->node || !m->model || !*m->model || !m->revision || !*m->revision)
        return ksv_err_set(err, 400, "a metric sample needs a node, a model and a revision");
    if (m->requests_2xx > INT64_MAX || m->requests_4xx > INT64_MAX ||
        m->requests_5xx > INT64_MAX || m->requests_other > INT64_MAX)
        return ksv_err_set(err, 400, "a metric sample's request count is out of range");
    if (!isfinite(m->latency_sum_s) || m->latency_sum_s < 0)
        return ksv_err_set(err, 400, "a metric sample's latency sum is not a finite, "
                           "non-negative number");
    if (m->n_buckets > KSV_STORE_MAX_BUCKETS || (m->n_buckets && !m->buckets))
        return ksv_err_set(err, 400, "a metric sample has %zu histogram buckets, more than %d",
                           m->n_buckets, KSV_STORE_MAX_BUCKETS);
    return 0;
}

/* Binds a sample's ?1..?11 in SAMPLE_COLUMNS order. */
static int bind_sample(ksv_store *s, sqlite3_stmt *st, const ksv_metric_sample *m,
                       ksv_sb *blob, ksv_err *err)
{
    ksv_sb_reset(blob);
    encode_buckets(m->buckets, m->n_buckets, blob);
    if (blob->oom)
        return ksv_err_set(err, 500, "out of memory encoding a histogram");
    if (blob->len > (size_t)INT32_MAX)
        return ksv_err_set(err, 400, "a histogram is too large to store");
    int rc = SQLITE_OK;
    STORE_BIND(&rc, st, STORE_INT(m->at_ms), STORE_INT(m->span_ms), STORE_TEXT(m->node),
               STORE_TEXT(m->model), STORE_TEXT(m->revision), STORE_INT((int64_t)m->requests_2xx),
               STORE_INT((int64_t)m->requests_4xx), STORE_INT((int64_t)m->requests_5xx),
               STORE_INT((int64_t)m->requests_other), STORE_REAL(m->latency_sum_s),
               STORE_BLOB(blob->data, (int)blob->len));
    if (rc != SQLITE_OK)
        return store_db_error(s, rc, "storing a metric sample", err);
    return 0;
}

int ksv_store_metrics_insert(ksv_store *s, const ksv_metric_sample *samples, size_t n,
                             ksv_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (check_sample(&samples[i], err) < 0)
            return -1;
    if (n == 0)
        return 0;
    store_tx tx;
    if (store_tx_begin(s, &tx, true, err) < 0)
        return -1;
    sqlite3_stmt *st;
    ksv_sb blob;
    ksv_sb_init(&blob);
    if (store_prepare(s, "INSERT INTO metric_samples (" SAMPLE_COLUMNS ") VALUES "
                      "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)", &st, err) != SQLITE_OK) {
        store_tx_abort(s, &tx);
        return -1;
    }
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        sqlite3_reset(st);
        r = bind_sample(s, st, &samples[i], &blob, err);
        if (r == 0)
            r = store_step_done(s, st, SQLITE_OK, "storing a metric sample", err);
    }
    sqlite3_finalize(st);
    ksv_sb_free(&blob);
    if (r < 0) {
        store_tx_abort(s, &tx);
        return -1;
    }
    return store_tx_commit(s, &tx, err);
}

/* Reads a row of SAMPLE_COLUMNS into elem (a ksv_metric_sample); ctx names the table. */
static int read_sample(ksv_store *s, sqlite3_stmt *st, void *elem, const void *ctx,
                       ksv_err *err)
{
    ksv_metric_sample *m = elem;
    const char *table = ctx;
    memset(m, 0, sizeof *m);
    int64_t req[4];
    char what[64];
#define COL(name) (snprintf(what, sizeof what, "%s.%s", table, name), what)
    if (store_col_int64(s, st, 0, false, 1, INT64_MAX, COL("at"), &m->at_ms, err) < 0 ||
        store_col_int64(s, st, 1, false, 1, INT64_MAX, COL("span"), &m->span_ms, err) < 0 ||
        store_col_text(s, st, 2, false, COL("node"), &m->node, err) < 0 ||
        store_col_text(s, st, 3, false, COL("model"), &m->model, err) < 0 ||
        store_col_text(s, st, 4, false, COL("revision"), &m->revision, err) < 0 ||
        store_col_int64(s, st, 5, false, 0, INT64_MAX, COL("requests_2xx"), &req[0], err) < 0 ||
        store_col_int64(s, st, 6, false, 0, INT64_MAX, COL("requests_4xx"), &req[1], err) < 0 ||
        store_col_int64(s, st, 7, false, 0, INT64_MAX, COL("requests_5xx"), &req[2], err) < 0 ||
        store_col_int64(s, st, 8, false, 0, INT64_MAX, COL("requests_other"), &req[3], err) < 0 ||
        store_col_double(s, st, 9, COL("latency_sum"), &m->latency_sum_s, err) < 0) {
        ksv_metric_sample_clear(m);
        return -1;
    }
#undef COL
    m->requests_2xx = (uint64_t)req[0];
    m->requests_4xx = (uint64_t)req[1];
    m->requests_5xx = (uint64_t)req[2];
    m->requests_other = (uint64_t)req[3];
    const void *p = sqlite3_column_blob(st, 10);
    int len = sqlite3_column_bytes(st, 10);
    if (sqlite3_column_type(st, 10) != SQLITE_BLOB || len < 0 ||
        decode_buckets(p, (size_t)len, &m->buckets, &m->n_buckets) < 0 ||
        m->latency_sum_s < 0) {
        ksv_metric_sample_clear(m);
        return store_corrupt(s, err, "a %s row has a malformed histogram or latency sum",
                             table);
    }
    return 0;
}

int ksv_store_metrics_query(ksv_store *s, ksv_metrics_resolution res, const char *node,
                            const char *model, const char *revision, int64_t from_ms,
                            int64_t to_ms, ksv_metric_list *out, ksv_err *err)
{
    memset(out, 0, sizeof *out);
    if (res != KSV_METRICS_RAW && res != KSV_METRICS_MINUTE)
        return ksv_err_set(err, 400, "unknown metrics resolution %d", (int)res);
    bool raw = res == KSV_METRICS_RAW;
    const char *sql =
        raw ? "SELECT " SAMPLE_COLUMNS " FROM metric_samples WHERE at > ?1 AND at <= ?2 "
              "AND (?3 IS NULL OR node = ?3) AND (?4 IS NULL OR model = ?4) "
              "AND (?5 IS NULL OR revision = ?5) ORDER BY at, node, model, revision, id"
            : "SELECT " ROLLUP_COLUMNS " FROM metric_rollups WHERE at > ?1 AND at <= ?2 "
              "AND (?3 IS NULL OR node = ?3) AND (?4 IS NULL OR model = ?4) "
              "AND (?5 IS NULL OR revision = ?5) ORDER BY at, node, model, revision";
    sqlite3_stmt *st;
    int rc = store_prepare(s, sql, &st, err);
    STORE_BIND(&rc, st, STORE_INT(from_ms), STORE_INT(to_ms), STORE_TEXT(node), STORE_TEXT(model),
               STORE_TEXT(revision));
    if (store_read_rows(s, st, rc, (void **)&out->items, &out->n, sizeof *out->items,
                        read_sample, raw ? "metric_samples" : "metric_rollups",
                        "reading metrics", err) < 0) {
        ksv_metric_list_free(out);
        return -1;
    }
    return 0;
}

static uint64_t add_sat(uint64_t a, uint64_t b, uint64_t max)
{
    return a > max - (b > max ? max : b) ? max : a + b;
}

/* Adds b into the running sum a (a owns its strings and buckets). */
static int accumulate(ksv_metric_sample *a, const ksv_metric_sample *b)
{
    const uint64_t max = INT64_MAX; /* what an INTEGER column holds */
    a->requests_2xx = add_sat(a->requests_2xx, b->requests_2xx, max);
    a->requests_4xx = add_sat(a->requests_4xx, b->requests_4xx, max);
    a->requests_5xx = add_sat(a->requests_5xx, b->requests_5xx, max);
    a->requests_other = add_sat(a->requests_other, b->requests_other, max);
    a->latency_sum_s += b->latency_sum_s;
    if (b->n_buckets > a->n_buckets) {
        uint64_t *grown = realloc(a->buckets, b->n_buckets * sizeof *grown);
        if (!grown)
            return -1;
        memset(grown + a->n_buckets, 0, (b->n_buckets - a->n_buckets) * sizeof *grown);
        a->buckets = grown;
        a->n_buckets = b->n_buckets;
    }
    for (size_t i = 0; i < b->n_buckets; i++)
        a->buckets[i] = add_sat(a->buckets[i], b->buckets[i], UINT64_MAX);
    return 0;
}

/* Merges a finished minute into metric_rollups, adding to a row already there (samples
 * that arrive late for a minute already rolled up). */
static int flush_rollup(ksv_store *s, ksv_metric_sample *acc, ksv_sb *blob, ksv_err *err)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s, "SELECT " ROLLUP_COLUMNS " FROM metric_rollups "
                           "WHERE node = ?1 AND model = ?2 AND revision = ?3 AND at = ?4", &st,
                           err);
    STORE_BIND(&rc, st, STORE_TEXT(acc->node), STORE_TEXT(acc->model), STORE_TEXT(acc->revision),
               STORE_INT(acc->at_ms));
    ksv_metric_sample old;
    memset(&old, 0, sizeof old);
    int found = store_read_one(s, st, rc, read_sample, &old, "metric_rollups",
                               "reading a metrics rollup", err);
    if (found > 0 && accumulate(acc, &old) < 0)
        found = ksv_err_set(err, 500, "out of memory rolling metrics up");
    ksv_metric_sample_clear(&old);
    if (found < 0)
        return -1;
    if (store_prepare(s, "INSERT OR REPLACE INTO metric_rollups (at, node, model, revision, "
                      "requests_2xx, requests_4xx, requests_5xx, requests_other, latency_sum, "
                      "buckets) VALUES (?1, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)", &st,
                      err) != SQLITE_OK)
        return -1;
    /* ?2 (span) is unused here: a rollup's span is always one minute. */
    int r = bind_sample(s, st, acc, blob, err);
    if (r == 0)
        r = store_step_done(s, st, SQLITE_OK, "writing a metrics rollup", err);
    sqlite3_finalize(st);
    return r;
}

static bool same_series_minute(const ksv_metric_sample *acc, const ksv_metric_sample *m,
                               int64_t minute_end)
{
    return acc->at_ms == minute_end && strcmp(acc->node, m->node) == 0 &&
           strcmp(acc->model, m->model) == 0 && strcmp(acc->revision, m->revision) == 0;
}

/* roll_up's running minute between rows. */
typedef struct rollup_state {
    ksv_metric_sample acc;
    bool have;
    ksv_sb blob;
    size_t *rolled;
} rollup_state;

static int roll_up_row(ksv_store *s, sqlite3_stmt *st, void *p, ksv_err *err)
{
    rollup_state *ru = p;
    ksv_metric_sample m;
    if (read_sample(s, st, &m, "metric_samples", err) < 0)
        return -1;
    /* at is the end of the sample's interval: (at - 1) lies inside it */
    int64_t minute_end = (m.at_ms - 1) / KSV_STORE_ROLLUP_STEP_MS * KSV_STORE_ROLLUP_STEP_MS +
                         KSV_STORE_ROLLUP_STEP_MS;
    int r = 0;
    if (ru->have && !same_series_minute(&ru->acc, &m, minute_end)) {
        r = flush_rollup(s, &ru->acc, &ru->blob, err);
        ksv_metric_sample_clear(&ru->acc);
        ru->have = false;
    }
    if (r == 0 && !ru->have) {
        ru->acc = m;
        ru->acc.at_ms = minute_end;
        ru->acc.span_ms = KSV_STORE_ROLLUP_STEP_MS;
        memset(&m, 0, sizeof m); /* acc took its strings and buckets */
        ru->have = true;
    } else if (r == 0 && accumulate(&ru->acc, &m) < 0) {
        r = ksv_err_set(err, 500, "out of memory rolling metrics up");
    }
    ksv_metric_sample_clear(&m);
    if (r == 0)
        (*ru->rolled)++;
    return r;
}

/* Folds every not yet rolled-up sample with at <= boundary into its minute's rollup. */
static int roll_up(ksv_store *s, int64_t boundary, size_t *rolled, ksv_err *err)
{
    sqlite3_stmt *st;
    int rc = store_prepare(s, "SELECT " SAMPLE_COLUMNS " FROM metric_samples "
                           "WHERE rolled_up = 0 AND at <= ?1 ORDER BY node, model, revision, at",
                           &st, err);
    rollup_state ru;
    memset(&ru, 0, sizeof ru);
    ksv_sb_init(&ru.blob);
    ru.rolled = rolled;
    store_bind_int64(&rc, st, 1, boundary);
    int r = store_each_row(s, st, rc, roll_up_row, &ru, "reading metric samples", err);
    if (r == 0 && ru.have)
        r = flush_rollup(s, &ru.acc, &ru.blob, err);
    ksv_metric_sample_clear(&ru.acc);
    ksv_sb_free(&ru.blob);
    return r;
}

/* One compaction step: sql with ?1 = at; *changes (when not NULL) the rows it changed. */
static int exec_at(ksv_store *s, const char *sql, int64_t at, size_t *changes, ksv_err *err)
{
    int r = store_exec_ids(s, sql, at, 0, "compacting metrics", err);
    if (r == 0 && changes)
        *changes = (size_t)sqlite3_changes(s->db);
    return r;
}

int ksv_store_metrics_compact(ksv_store *s, int64_t now_ms, ksv_metrics_compact_stats *stats,
                              ksv_err *err)
{
    ksv_metrics_compact_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    if (now_ms <= 0)
        return ksv_err_set(err, 400, "compacting metrics needs the current time");
    int64_t boundary = now_ms / KSV_STORE_ROLLUP_STEP_MS * KSV_STORE_ROLLUP_STEP_MS;
    store_tx tx;
    if (store_tx_begin(s, &tx, true, err) < 0)
        return -1;
    if (roll_up(s, boundary, &stats->rolled_up, err) < 0 ||
        exec_at(s, "UPDATE metric_samples SET rolled_up = 1 WHERE rolled_up = 0 AND at <= ?1",
                boundary, NULL, err) < 0 ||
        exec_at(s, "DELETE FROM metric_samples WHERE at <= ?1 AND rolled_up = 1",
                now_ms - KSV_STORE_RAW_RETENTION_MS, &stats->deleted_raw, err) < 0 ||
        exec_at(s, "DELETE FROM metric_rollups WHERE at <= ?1",
                now_ms - KSV_STORE_ROLLUP_RETENTION_MS, &stats->deleted_rollups, err) < 0) {
        store_tx_abort(s, &tx);
        return -1;
    }
    return store_tx_commit(s, &tx, err);
}

void ksv_metric_sample_clear(ksv_metric_sample *m)
{
    if (!m)
        return;
    STORE_FREE_STRINGS(m->node, m->model, m->revision);
    free(m->buckets);
    memset(m, 0, sizeof *m);
}

void ksv_metric_list_free(ksv_metric_list *l)
{
    STORE_LIST_FREE(l, ksv_metric_sample_clear);
}
