/* test_labels.c: node label and selector syntax (src/common/labels.h): good and bad keys and
 * values as Kubernetes defines them, KEY=VALUE and KEY- arguments, every selector operator,
 * spaces, and hostile selectors (overlong, control bytes, many terms, lone operators),
 * which must be refused with a message that shows no raw control byte. Run under ASan. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/labels.h"

#include "ktest.h"

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return false;
    return true;
}

static void test_keys_and_values(void)
{
    ksv_err err;
    const char *good_keys[] = {"region", "a", "gpu.count", "ksv.io/gpu", "my_key-2",
                               "example.com/Rack", "A1"};
    for (size_t i = 0; i < sizeof good_keys / sizeof *good_keys; i++)
        KT_CHECK(ksv_label_key_check(good_keys[i], &err) == 0, "key %s accepted", good_keys[i]);
    char long_name[80];
    memset(long_name, 'a', 64);
    long_name[64] = '\0';
    const char *bad_keys[] = {"", "-a", "a-", "a b", "a=b", "/a", "a/", "Upper.Case/x",
                              "a..b/c", "-a.com/x", long_name, "a/b/c", "\x1b[31m"};
    for (size_t i = 0; i < sizeof bad_keys / sizeof *bad_keys; i++) {
        KT_CHECK(ksv_label_key_check(bad_keys[i], &err) != 0 && err.status == 400 &&
                     printable(err.msg),
                 "key %zu refused: %s", i, err.msg);
    }
    KT_CHECK(ksv_label_value_check("", &err) == 0, "an empty value is a value");
    KT_CHECK(ksv_label_value_check("eu-west-1", &err) == 0, "value eu-west-1");
    long_name[63] = '\0';
    KT_CHECK(ksv_label_value_check(long_name, &err) == 0, "a 63-character value");
    long_name[63] = 'a';
    KT_CHECK(ksv_label_value_check(long_name, &err) != 0, "a 64-character value refused");
    KT_CHECK(ksv_label_value_check("a b", &err) != 0 && ksv_label_value_check("x/", &err) != 0,
             "spaces and slashes refused in values");
}

static void test_args(void)
{
    ksv_err err;
    char k[KSV_LABEL_KEY_MAX + 1], v[KSV_LABEL_VALUE_MAX + 1];
    bool rm;
    KT_CHECK(ksv_label_parse_arg("region=eu", k, sizeof k, v, sizeof v, &rm, &err) == 0 &&
                 strcmp(k, "region") == 0 && strcmp(v, "eu") == 0 && !rm, "region=eu");
    KT_CHECK(ksv_label_parse_arg("tier=", k, sizeof k, v, sizeof v, &rm, &err) == 0 &&
                 strcmp(k, "tier") == 0 && v[0] == '\0', "tier= sets an empty value");
    KT_CHECK(ksv_label_parse_arg("region-", k, sizeof k, v, sizeof v, &rm, &err) == 0 && rm &&
                 strcmp(k, "region") == 0, "region- removes");
    KT_CHECK(ksv_label_parse_arg("region-", k, sizeof k, v, sizeof v, NULL, &err) != 0,
             "removal refused where only K=V is meant (node add --label)");
    KT_CHECK(ksv_label_parse_arg("region", k, sizeof k, v, sizeof v, &rm, &err) != 0 &&
                 strstr(err.msg, "KEY=VALUE"), "no '=': %s", err.msg);
    KT_CHECK(ksv_label_parse_arg("=eu", k, sizeof k, v, sizeof v, &rm, &err) != 0,
             "an empty key refused");
    KT_CHECK(ksv_label_parse_arg("a=b=c", k, sizeof k, v, sizeof v, &rm, &err) != 0,
             "a second '=' is not part of a value");
    char big[2000];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[10] = '=';
    KT_CHECK(ksv_label_parse_arg(big, k, sizeof k, v, sizeof v, &rm, &err) != 0 &&
                 strstr(err.msg, "too long"), "an overlong value: %s", err.msg);
    big[10] = 'k';
    big[1500] = '=';
    KT_CHECK(ksv_label_parse_arg(big, k, sizeof k, v, sizeof v, &rm, &err) != 0,
             "an overlong key: %s", err.msg);
}

static bool sel_match(const char *sel_text, const char *const *keys, const char *const *values,
                      size_t n)
{
    ksv_selector sel;
    ksv_err err;
    if (ksv_selector_parse(sel_text, &sel, &err) != 0) {
        KT_CHECK(false, "selector %s parses: %s", sel_text, err.msg);
        return false;
    }
    return ksv_selector_matches(&sel, keys, values, n);
}

static void test_selectors(void)
{
    const char *keys[] = {"region", "gpu", "tier"}, *values[] = {"eu", "a100", ""};
    const struct { const char *sel; bool match; } cases[] = {
        {"region=eu", true}, {"region==eu", true}, {"region=us", false},
        {"region=eu,gpu=a100", true}, {"region=eu,gpu=t4", false}, {" region = eu , gpu ", true},
        {"region!=us", true}, {"region!=eu", false}, {"zone!=a", true} /* absent */,
        {"gpu", true}, {"zone", false}, {"!zone", true}, {"!gpu", false},
        {"tier=", true} /* an empty value is a value */,
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        KT_CHECK(sel_match(cases[i].sel, keys, values, 3) == cases[i].match, "%s: %s",
                 cases[i].sel, cases[i].match ? "matches" : "does not match");
    KT_CHECK(!sel_match("region=eu", NULL, NULL, 0), "a node without labels: no match");
    KT_CHECK(sel_match("!region", NULL, NULL, 0), "... but !region holds");

    ksv_selector sel;
    ksv_err err;
    const char *bad[] = {"", "   ", ",", "region=eu,", ",region=eu", "region=eu,,gpu",
                         "=eu", "!", "!=eu", "region=e u", "region=eu=x", "a b",
                         "region=\x1b[2J", "re\ngion=eu", "region<eu"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        KT_CHECK(ksv_selector_parse(bad[i], &sel, &err) != 0 && err.status == 400 &&
                     printable(err.msg) && sel.n == 0,
                 "bad selector %zu refused: %s", i, err.msg);
    KT_CHECK(ksv_selector_parse(NULL, &sel, &err) != 0, "NULL refused");
    /* Many terms: 32 accepted, 33 refused; a huge one refused without reading past it. */
    char many[1024] = "";
    for (int i = 0; i < 33; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%sk%d", i ? "," : "", i);
    KT_CHECK(ksv_selector_parse(many, &sel, &err) != 0 && strstr(err.msg, "terms"),
             "33 terms refused: %s", err.msg);
    *strrchr(many, ',') = '\0';
    KT_CHECK(ksv_selector_parse(many, &sel, &err) == 0 && sel.n == 32, "32 terms accepted");
    size_t huge_n = 1 << 20;
    char *huge = malloc(huge_n + 1);
    if (huge) {
        memset(huge, 'a', huge_n);
        huge[huge_n] = '\0';
        KT_CHECK(ksv_selector_parse(huge, &sel, &err) != 0 && strstr(err.msg, "too long"),
                 "a 1 MB term refused: %s", err.msg);
        for (size_t i = 1; i < huge_n; i += 2)
            huge[i] = ',';
        KT_CHECK(ksv_selector_parse(huge, &sel, &err) != 0, "half a million terms refused");
        free(huge);
    }
}

int main(void)
{
    test_keys_and_values();
    test_args();
    test_selectors();
    return kt_summary("test_labels");
}
