/* codec_bench.c: decode time of V2 infer bodies, ksv's single-pass codec against json-c
 * (parse the body, walk inputs[0].data, cast every number to float: the work the codec does).
 *
 * Bodies: 1x20 and 64x20 FP32, numbers written three ways: short decimals as typed by hand
 * ("6.8"), %.9g (what a C client printing floats sends), and the 17-digit doubles a Python
 * client sends for float32 values (numpy float32 array -> tolist() -> json.dumps).
 * Each figure is the best of 5 timed batches (CPU time per body, in microseconds).
 * Usage: codec_bench [seconds per batch, default 0.1] */
#include "engine/v2_codec.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU time of this thread: the build machines are shared, and wall time would count the
 * time other processes hold the core. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void build_body(ksv_sb *sb, int rows, int cols, int style, unsigned seed)
{
    ksv_sb_reset(sb);
    ksv_sb_printf(sb, "{\"id\":\"bench\",\"inputs\":[{\"name\":\"input-0\",\"shape\":[%d,%d],"
                      "\"datatype\":\"FP32\",\"data\":[", rows, cols);
    for (int r = 0; r < rows; r++) {
        ksv_sb_puts(sb, r ? ",[" : "[");
        for (int c = 0; c < cols; c++) {
            seed = seed * 1103515245u + 12345u;
            float v = (float)((seed >> 8) % 200000) / 1000.0f - 50.0f;
            if (c)
                ksv_sb_putc(sb, ',');
            if (style == 0)
                ksv_sb_printf(sb, "%.1f", (double)v);
            else if (style == 1)
                ksv_sb_printf(sb, "%.9g", (double)v);
            else
                ksv_sb_printf(sb, "%.17g", (double)v);
        }
        ksv_sb_putc(sb, ']');
    }
    ksv_sb_puts(sb, "]}]}");
}

static size_t flatten(json_object *v, float *out, size_t n)
{
    if (json_object_is_type(v, json_type_array)) {
        size_t len = json_object_array_length(v);
        for (size_t i = 0; i < len; i++)
            n = flatten(json_object_array_get_idx(v, i), out, n);
        return n;
    }
    out[n] = (float)json_object_get_double(v);
    return n + 1;
}

static size_t jsonc_decode(const ksv_sb *body, float *out)
{
    json_object *root = json_tokener_parse(body->data), *inputs, *data;
    size_t n = 0;
    if (root && json_object_object_get_ex(root, "inputs", &inputs) &&
        json_object_object_get_ex(json_object_array_get_idx(inputs, 0), "data", &data))
        n = flatten(data, out, 0);
    json_object_put(root);
    return n;
}

int main(int argc, char **argv)
{
    double budget = argc > 1 ? atof(argv[1]) : 0.1;
    static const char *const style_names[] = {"short (6.8)", "%.9g", "17-digit (python)"};
    static const int shapes[][2] = {{1, 20}, {64, 20}};
    ksv_sb body;
    ksv_sb_init(&body);
    ksv_tensor_req req;
    ksv_tensor_req_init(&req);
    float *scratch = malloc(64 * 20 * sizeof(float));
    if (!scratch)
        return 1;
    printf("%-8s %-18s %7s %12s %12s %8s\n", "shape", "numbers", "bytes", "ksv us", "json-c us",
           "speedup");
    for (size_t s = 0; s < 2; s++) {
        for (int style = 0; style < 3; style++) {
            int rows = shapes[s][0], cols = shapes[s][1];
            build_body(&body, rows, cols, style, 42);
            ksv_err err;
            if (ksv_v2_decode_infer(body.data, body.len, 1 << 20, &req, &err) != 0) {
                fprintf(stderr, "decode failed: %s\n", err.msg);
                return 1;
            }
            if (jsonc_decode(&body, scratch) != req.count ||
                memcmp(scratch, req.data, req.count * sizeof(float)) != 0) {
                fprintf(stderr, "ksv and json-c disagree\n");
                return 1;
            }
            double us_ksv = 1e30, us_jc = 1e30;
            for (int batch = 0; batch < 5; batch++) {
                double t0 = now_s(), t;
                long n = 0;
                do {
                    for (int i = 0; i < 100; i++)
                        ksv_v2_decode_infer(body.data, body.len, 1 << 20, &req, &err);
                    n += 100;
                } while ((t = now_s()) - t0 < budget);
                if ((t - t0) / (double)n * 1e6 < us_ksv)
                    us_ksv = (t - t0) / (double)n * 1e6;
                t0 = now_s();
                n = 0;
                do {
                    for (int i = 0; i < 10; i++)
                        jsonc_decode(&body, scratch);
                    n += 10;
                } while ((t = now_s()) - t0 < budget);
                if ((t - t0) / (double)n * 1e6 < us_jc)
                    us_jc = (t - t0) / (double)n * 1e6;
            }
            char shape[16];
            snprintf(shape, sizeof shape, "%dx%d", rows, cols);
            printf("%-8s %-18s %7zu %12.2f %12.2f %7.1fx\n", shape, style_names[style], body.len,
                   us_ksv, us_jc, us_jc / us_ksv);
        }
    }
    free(scratch);
    ksv_tensor_req_free(&req);
    ksv_sb_free(&body);
    return 0;
}
