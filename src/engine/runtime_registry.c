/* runtime_registry.c: the table of runtimes the engine can load models with, by name.
 *
 * Adding a runtime is one line in KSV_RUNTIME_LIST below (plus its extern in runtime.h).
 * Each entry names the ops struct and repeats its name so the list of names is a string
 * built by the compiler; tests check that the repeated name equals ops->name. */
#include <string.h>

#include "engine/runtime.h"

#define KSV_RUNTIME_LIST(X) \
    X(ksv_runtime_xgboost, "ksv-xgboost") \
    X(ksv_runtime_forest, "ksv-forest") \
    X(ksv_runtime_auto, "auto") \
    X(ksv_runtime_external, "external")

#define KSV_RUNTIME_AS_POINTER(ops, name) &ops,
#define KSV_RUNTIME_AS_NAME(ops, name) ", " name

static const ksv_runtime_ops *const runtime_table[] = {
    KSV_RUNTIME_LIST(KSV_RUNTIME_AS_POINTER)
};

/* Starts with ", "; ksv_runtime_names() skips it. */
static const char runtime_names_joined[] = "" KSV_RUNTIME_LIST(KSV_RUNTIME_AS_NAME);

const ksv_runtime_ops *ksv_runtime_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof runtime_table / sizeof runtime_table[0]; i++) {
        if (strcmp(runtime_table[i]->name, name) == 0)
            return runtime_table[i];
    }
    return NULL;
}

const char *ksv_runtime_names(void)
{
    return runtime_names_joined + 2;
}

void ksv_runtime_build_info(ksv_runtime_build *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < sizeof runtime_table / sizeof runtime_table[0]; i++)
        if (runtime_table[i]->build_info)
            runtime_table[i]->build_info(out);
}
