/* test_hostile_documents.c: documents built to exhaust memory are refused fast, with
 * memory proportional to their size (issue 11, findings 3 and 6).
 *
 * - ksv-forest's UBJSON reader: 1.8 KB of nested typed containers of zero-size elements
 *   ("[$T#l" with a count of 2^24, 200 times) once made 3.5 GB of json-c objects; now the
 *   document's value budget (one per byte, plus a slack) refuses it. A real XGBoost .ubj
 *   model still loads under the same budget.
 * - the manifest reader's YAML: one 2 MB anchored string and 150k aliases to it (3.4 MB)
 *   once asked for 300 GB; aliases are now budgeted by expanded bytes. A manifest whose
 *   aliases expand modestly still reads.
 * Each refusal must take under 2 s (the old build took 6-8 s to run out of memory). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/manifest.h"
#include "common/strbuf.h"
#include "engine/ubjson.h"

#include "ktest.h"

#ifndef KSV_SRCDIR
#define KSV_SRCDIR "."
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    *len = buf && n > 0 ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    return buf;
}

static void test_ubjson(void)
{
    /* {"a":[ [$T#l<2^24> x200 ]} : each inner array is 9 bytes and claims 16.7M values. */
    ksv_sb doc;
    ksv_sb_init(&doc);
    ksv_sb_append(&doc, "{U\x01" "a[", 5);
    for (int i = 0; i < 200; i++)
        ksv_sb_append(&doc, "[$T#l\x01\x00\x00\x00", 9);
    ksv_sb_append(&doc, "]}", 2);
    KT_CHECK(doc.len < 2000, "the hostile document is %zu bytes", doc.len);
    ksv_err err = {0};
    double t = now_s();
    json_object *root = ksv_ubjson_parse((const unsigned char *)doc.data, doc.len, &err);
    double took = now_s() - t;
    KT_CHECK(!root && err.status == 400 && strstr(err.msg, "more values than"),
             "nested zero-size typed arrays are refused: %s", err.msg);
    KT_CHECK(took < 2.0, "refused in %.2f s", took);
    json_object_put(root);
    ksv_sb_free(&doc);

    /* The same trick one level down: a typed array of typed arrays. */
    unsigned char nested[] = {'[', '$', '[', '#', 'l', 0, 0, 0x10, 0, '$', 'F', '#', 'l', 1, 0, 0, 0};
    ksv_err_clear(&err);
    root = ksv_ubjson_parse(nested, sizeof nested, &err);
    KT_CHECK(!root && err.status == 400, "a typed array of typed arrays is refused: %s", err.msg);
    json_object_put(root);

    size_t len = 0;
    unsigned char *model = read_all(KSV_SRCDIR "/data/models/iris-ubj/model.ubj", &len);
    KT_CHECK(model && len > 0, "read data/models/iris-ubj/model.ubj");
    if (model) {
        ksv_err_clear(&err);
        root = ksv_ubjson_parse(model, len, &err);
        KT_CHECK(root != NULL, "a real XGBoost UBJSON model fits the budget: %s", err.msg);
        json_object_put(root);
    }
    free(model);
}

static void test_yaml_aliases(void)
{
    /* metadata.annotations.a: &big "xxx...2 MB"; then 150k aliases in a list. */
    const size_t big = 2u << 20, aliases = 150000;
    ksv_sb doc;
    ksv_sb_init(&doc);
    ksv_sb_puts(&doc, "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
                      "metadata:\n  name: bomb\n  annotations:\n    a: &big \"");
    for (size_t i = 0; i < big; i++)
        ksv_sb_putc(&doc, 'x');
    ksv_sb_puts(&doc, "\"\nspec:\n  predictor:\n    x: [");
    for (size_t i = 0; i < aliases; i++)
        ksv_sb_puts(&doc, i ? ",*big" : "*big");
    ksv_sb_puts(&doc, "]\n");
    KT_CHECK(doc.len < KSV_MANIFEST_MAX_BYTES, "the bomb is %zu bytes, under the file limit",
             doc.len);
    ksv_manifest_list list;
    ksv_err err = {0};
    double t = now_s();
    int rc = ksv_manifest_parse_buffer(doc.data, doc.len, "bomb.yaml", NULL, &list, &err);
    double took = now_s() - t;
    KT_CHECK(rc != 0 && err.status == 400 && strstr(err.msg, "bomb.yaml:") &&
                 strstr(err.msg, "expands to more than"),
             "150k aliases of a 2 MB string are refused: %s", err.msg);
    KT_CHECK(took < 2.0, "refused in %.2f s", took);
    if (rc == 0)
        ksv_manifest_list_free(&list);
    ksv_sb_free(&doc);

    /* Aliases that expand modestly still read (an anchor reused a few times). */
    const char *ok = "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
                     "metadata:\n  name: fine\n  annotations:\n    a: &n \"shared\"\n"
                     "    b: *n\n    c: *n\n"
                     "spec:\n  predictor:\n    model:\n      modelFormat:\n        name: xgboost\n"
                     "      storageUri: /models/fine/model.json\n";
    ksv_err_clear(&err);
    rc = ksv_manifest_parse_buffer(ok, strlen(ok), "fine.yaml", NULL, &list, &err);
    KT_CHECK(rc == 0, "a manifest with a few aliases reads: %s", err.msg);
    if (rc == 0)
        ksv_manifest_list_free(&list);
}

int main(void)
{
    test_ubjson();
    test_yaml_aliases();
    return kt_summary("test_hostile_documents");
}
