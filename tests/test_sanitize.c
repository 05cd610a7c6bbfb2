/* test_sanitize.c: the terminal filter and the shared name limits (src/common/sanitize.c,
 * src/common/field_limits.c): escape sequences, C1 controls, bidi overrides and ill-formed
 * UTF-8 become '?', printable UTF-8 passes, cuts never split a character, and the name
 * limits make MODEL-00001 always fit the engine's 63. */
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/field_limits.h"
#include "common/sanitize.h"

#include "ktest.h"

static void check_filter(const char *in, const char *want, const char *what)
{
    char out[256];
    ksv_sanitize_copy(out, sizeof out, in);
    KT_CHECK_STR(out, want, "%s", what);
    KT_CHECK(ksv_is_terminal_safe(out), "%s: the output is terminal safe", what);
    KT_CHECK(ksv_is_terminal_safe(in) == (strcmp(in, want) == 0),
             "%s: is_terminal_safe agrees with the filter", what);
}

int main(void)
{
    check_filter("1.2.3", "1.2.3", "plain ASCII passes");
    check_filter("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                 "printable UTF-8 passes");
    check_filter("\x1b]0;pwned\x07\x1b[2Jv1", "?]0;pwned??[2Jv1", "OSC title and clear screen");
    check_filter("a\nb\rc\td", "a?b?c?d", "newline, CR and tab (log forgery)");
    check_filter("x\x7fy", "x?y", "DEL");
    check_filter("\xc2\x9b" "31m", "?31m", "C1 CSI in UTF-8");
    check_filter("\xc2\x85next", "?next", "C1 NEL");
    check_filter("\xc2\xa0" "nbsp", "\xc2\xa0" "nbsp", "U+00A0 is not C1");
    check_filter("a\xe2\x80\xae" "b", "a?b", "RIGHT-TO-LEFT OVERRIDE");
    check_filter("a\xe2\x81\xa6" "b", "a?b", "LEFT-TO-RIGHT ISOLATE");
    check_filter("a\xe2\x80\xa8" "b", "a?b", "LINE SEPARATOR");
    check_filter("a\xe2\x80\x94" "b", "a\xe2\x80\x94" "b", "an em dash passes");
    check_filter("\xff\xfe", "??", "bytes that are never UTF-8");
    check_filter("\xc0\xaf", "??", "an overlong '/'");
    check_filter("\xed\xa0\x80", "???", "a surrogate");
    check_filter("ab\xe2\x82", "ab??", "a cut sequence");

    /* Cuts never split a sequence, and the result is NUL-terminated. */
    char small[5];
    ksv_sanitize_copy(small, sizeof small, "ab\xe2\x82\xac" "cd");
    KT_CHECK_STR(small, "ab", "a cut keeps whole characters only");
    ksv_sanitize_copy(small, sizeof small, "\x1b\x1b\x1b\x1b\x1b\x1b");
    KT_CHECK_STR(small, "????", "a cut of replacements");
    char in_place[] = "v\x1b[31m\xc2\x9b" "1";
    KT_CHECK_STR(ksv_sanitize(in_place), "v?[31m?1", "in place");

    /* Every error message is filtered: it is what reaches terminals and logs. */
    ksv_err err;
    ksv_err_set(&err, 502, "node said: %s", "\x1b]0;x\x07");
    KT_CHECK_STR(err.msg, "node said: ?]0;x?", "ksv_err_set filters");
    ksv_err_prefix(&err, "node %s", "e\x1b");
    KT_CHECK_STR(err.msg, "node e?: node said: ?]0;x?", "ksv_err_prefix filters");

    /* The name limits. */
    char name[80];
    memset(name, 'a', KSV_MODEL_NAME_MAX);
    name[KSV_MODEL_NAME_MAX] = '\0';
    KT_CHECK(!ksv_dns_label_problem(name, KSV_MODEL_NAME_MAX), "a 57-character model name");
    char rev[96];
    snprintf(rev, sizeof rev, "%s-%05d", name, KSV_REVISION_SEQ_MAX);
    KT_CHECK(!ksv_dns_label_problem(rev, KSV_ENGINE_NAME_MAX),
             "its last revision name fits the engine's limit (%zu)", strlen(rev));
    strcat(name, "a");
    KT_CHECK(ksv_dns_label_problem(name, KSV_MODEL_NAME_MAX) != NULL,
             "a 58-character model name is refused");
    KT_CHECK(!ksv_dns_label_problem(name, KSV_NODE_NAME_MAX), "but is a node name");
    const char *bad[] = {"", "../../../escape", "a/b", "A", "a_b", "-a", "a-", "a\x01" "b",
                         "a.b", "a b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        KT_CHECK(ksv_dns_label_problem(bad[i], KSV_NODE_NAME_MAX) != NULL,
                 "'%s' is not a DNS label", bad[i]);
    const char *good[] = {"a", "edge-1", "0", "gpu-a", "x9"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        KT_CHECK(!ksv_dns_label_problem(good[i], KSV_NODE_NAME_MAX), "'%s' is", good[i]);
    return kt_summary("test_sanitize");
}
