/* fuzz_model_lightgbm.c: LightGBM text models as ksv-forest reads them
 * (src/engine/forest/forest_lightgbm.c); what loads also predicts a few rows (NaN, zeros,
 * values within 1e-35 of 0, negative, fractional and huge categories), so a walk the loader
 * let through that ends outside its tree or never ends shows up here too. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "engine/forest/forest_load.h"
#include "engine/forest/forest_predict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const float values[] = {NAN, 0.0f, -0.0f, 1e-36f, -1.0f, 2.5f, 7.0f, 31.0f, 1e10f,
                                   -3e38f, 0.5f};
    enum { ROWS = 4 };
    forest *f = NULL;
    ksv_err err;
    if (forest_load_buffer(data, size, FOREST_FORMAT_LIGHTGBM, FOREST_PREFER_AUTO, &f, &err) != 0)
        return 0;
    size_t cols = f->num_features, n = (size_t)ROWS * cols;
    if (cols > 4096) { /* a valid wide model: rows of 16M features only slow the fuzzer */
        forest_free(f);
        return 0;
    }
    float *x = malloc(n * sizeof *x);
    float *out = malloc((size_t)ROWS * f->num_outputs * sizeof *out);
    float *scratch = malloc(forest_scratch_floats(f) * sizeof *scratch);
    if (x && out && scratch) {
        for (size_t i = 0; i < n; i++)
            x[i] = values[i % (sizeof values / sizeof values[0])];
        forest_predict(f, x, ROWS, out, scratch);
    }
    free(x);
    free(out);
    free(scratch);
    forest_free(f);
    return 0;
}
