/* fuzz_model_xgboost.c: model files as the ksv-xgboost runtime loads them
 * (src/engine/runtime_xgboost.c): ksv's checks of the legacy binary layout (.bst) and of
 * the JSON/UBJSON document, then XGBoost's own loader and one warm-up prediction on what
 * passed them. The first byte picks the file name's extension (0 .bst, 1 .json, 2 .ubj);
 * the rest is the file, written to a temporary file as the engine reads a downloaded one.
 * libxgboost itself is not instrumented: a crash inside it on input ksv let through is a
 * finding all the same (the engine process would die). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/runtime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const EXTENSIONS[] = {".bst", ".json", ".ubj"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char paths[3][128];
    if (size == 0)
        return 0;
    unsigned pick = data[0] % 3;
    if (!paths[pick][0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(paths[pick], sizeof paths[pick], "%s/fuzz_model_xgboost.%ld%s",
                 tmp && *tmp ? tmp : "/tmp", (long)getpid(), EXTENSIONS[pick]);
    }
    FILE *f = fopen(paths[pick], "wb");
    if (!f)
        return 0;
    size_t wrote = fwrite(data + 1, 1, size - 1, f);
    if (fclose(f) != 0 || wrote != size - 1)
        return 0;
    ksv_runtime_options opts = {.workers = 1, .predict_threads = 1};
    ksv_model_info info;
    void *model = NULL;
    ksv_err err;
    if (ksv_runtime_xgboost.load(paths[pick], &opts, &model, &info, &err) == 0)
        ksv_runtime_xgboost.unload(model);
    unlink(paths[pick]);
    return 0;
}
