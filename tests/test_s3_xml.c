/* test_s3_xml.c: the S3 reply reader (engine/s3_xml.h) against well-formed listings and
 * errors written by hand from S3's documented shapes, and against hostile replies: a DTD
 * with entities (the "billion laughs"), nesting 10,000 deep, unterminated tags, comments
 * and CDATA, a key with a NUL, bad entities and character references, text that is not
 * UTF-8, a truncated page without a token, sizes that are not numbers; then every prefix
 * of a good reply and random byte mutations (none may crash: run under ASan/UBSan). */
#include "engine/s3_xml.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ktest.h"

static const char *page1 =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>models</Name><Prefix>m%2F</Prefix><KeyCount>3</KeyCount>"
    "<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
    "<Contents><Key>m%2Fmodel.json</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
    "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>462665</Size>"
    "<StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key>m%2Fa+b%26c.txt</Key><Size>0</Size></Contents>"
    "<!-- a comment --><Contents>\n  <Key><![CDATA[m/raw<key>]]></Key>\n  <Size>7</Size>\n"
    "</Contents></ListBucketResult>";

static const char *page2 =
    "<ListBucketResult><IsTruncated>false</IsTruncated>"
    "<Contents><Key>caf&#233;/&#x1F600;&lt;&amp;&gt;&apos;.bin</Key><Size>9007199254740993</Size>"
    "</Contents><Contents><Key>empty/</Key><Size>0</Size></Contents></ListBucketResult>";

static int parse(const char *xml, ksv_s3_list *l, ksv_err *err)
{
    return ksv_s3_parse_list(xml, strlen(xml), l, err);
}

static void good_pages(void)
{
    ksv_s3_list l = {0};
    ksv_err err;
    KT_CHECK(parse(page1, &l, &err) == 0, "page 1 parses (%s)", err.msg);
    KT_CHECK(l.n == 3 && l.truncated, "three objects, truncated");
    KT_CHECK_STR(l.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=", "token");
    if (l.n == 3) {
        KT_CHECK_STR(l.v[0].key, "m/model.json", "URL-encoded key decoded");
        KT_CHECK(l.v[0].size == 462665, "size");
        KT_CHECK_STR(l.v[0].etag, "\"9b2cf535f27731c974343645a3985328\"", "etag with entities");
        KT_CHECK_STR(l.v[1].key, "m/a b&c.txt", "+ and %%26 decoded");
        KT_CHECK_STR(l.v[2].key, "m/raw<key>", "CDATA kept as is");
        KT_CHECK(l.v[2].size == 7, "whitespace around elements ignored");
    }
    KT_CHECK(parse(page2, &l, &err) == 0, "page 2 appends (%s)", err.msg);
    KT_CHECK(l.n == 5 && !l.truncated && !l.next_token, "five objects, the last page");
    if (l.n == 5) {
        KT_CHECK_STR(l.v[3].key, "caf\xc3\xa9/\xf0\x9f\x98\x80<&>'.bin",
                     "character references and the five entities");
        KT_CHECK(l.v[3].size == 9007199254740993LL, "a size past 2^53 stays exact");
    }
    ksv_s3_list_free(&l);
}

static void hostile(void)
{
    static const struct {
        const char *xml, *why;
    } cases[] = {
        {"<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]>"
         "<ListBucketResult><Contents><Key>&lol2;</Key><Size>1</Size></Contents></ListBucketResult>",
         "DTD"},
        {"<ListBucketResult><Contents><Key>&lol;</Key><Size>1</Size></Contents></ListBucketResult>",
         "unknown entity"},
        {"<ListBucketResult><Contents><Key>a", "ends inside"},
        {"<ListBucketResult><Contents><Key>a</Size></Contents></ListBucketResult>", "does not match"},
        {"<ListBucketResult><!-- never closed", "unterminated comment"},
        {"<ListBucketResult><Contents><Key><![CDATA[x</Key>", "unterminated CDATA"},
        {"<ListBucketResult><Contents><Key>&#0;</Key><Size>1</Size></Contents></ListBucketResult>",
         "NUL"},
        {"<ListBucketResult><Contents><Key>&#xD800;</Key><Size>1</Size></Contents></ListBucketResult>",
         "surrogate"},
        {"<ListBucketResult><Contents><Key>&#x110000;</Key><Size>1</Size></Contents></ListBucketResult>",
         "above U+10FFFF"},
        {"<ListBucketResult><Contents><Key>&#;</Key><Size>1</Size></Contents></ListBucketResult>",
         "empty character reference"},
        {"<ListBucketResult><Contents><Key>\xff\xfe</Key><Size>1</Size></Contents></ListBucketResult>",
         "not UTF-8"},
        {"<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
         "not a number"},
        {"<ListBucketResult><Contents><Key>k</Key><Size>99999999999999999999</Size></Contents>"
         "</ListBucketResult>", "not a number"},
        {"<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>", "without a Key"},
        {"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
         "without a NextContinuationToken"},
        {"<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>a%00b</Key><Size>1</Size>"
         "</Contents></ListBucketResult>", "URL-encoded"},
        {"<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>a%zz</Key><Size>1</Size>"
         "</Contents></ListBucketResult>", "URL-encoded"},
        {"<Error><Code>AccessDenied</Code></Error>", "not a ListBucketResult"},
        {"<a></a><b></b>", "second root"},
        {"garbage<ListBucketResult/>", "outside the root"},
        {"", "no XML element"},
        {"<ListBucketResult attr=\"unterminated></ListBucketResult>", "attribute"},
        {"<ListBucketResult><Contents<Key>", "inside a tag"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ksv_s3_list l = {0};
        ksv_err err;
        ksv_err_clear(&err);
        int rc = parse(cases[i].xml, &l, &err);
        KT_CHECK(rc != 0 && err.status == 502 && strstr(err.msg, cases[i].why),
                 "hostile reply %zu refused: %s (want \"%s\")", i, err.msg, cases[i].why);
        ksv_s3_list_free(&l);
    }
    /* 10,000 nested elements: refused at depth 32, no recursion. */
    size_t n = 10000;
    char *deep = malloc(n * 3 + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(deep + 3 * i, "<a>", 3);
    deep[3 * n] = '\0';
    ksv_s3_list l = {0};
    ksv_err err;
    KT_CHECK(parse(deep, &l, &err) != 0 && strstr(err.msg, "nested"), "deep nesting: %s",
             err.msg);
    free(deep);
    /* A 5,000-byte key: over the text bound. */
    char *longkey = malloc(6000);
    strcpy(longkey, "<ListBucketResult><Contents><Key>");
    memset(longkey + strlen(longkey), 'k', 5000);
    strcpy(longkey + 33 + 5000, "</Key></Contents></ListBucketResult>");
    KT_CHECK(parse(longkey, &l, &err) != 0 && strstr(err.msg, "4096"), "long text: %s", err.msg);
    free(longkey);
    ksv_s3_list_free(&l);
}

static void errors(void)
{
    char code[200];
    const char *e = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch"
                    "</Code><Message>The request signature we calculated does not match.</Message>"
                    "<RequestId>1</RequestId></Error>";
    ksv_s3_error_code(e, strlen(e), code, sizeof code);
    KT_CHECK_STR(code, "SignatureDoesNotMatch: The request signature we calculated does not match.",
                 "an S3 error");
    const char *esc = "<Error><Code>X\x1b[2J</Code><Message>m&#10;n</Message></Error>";
    ksv_s3_error_code(esc, strlen(esc), code, sizeof code);
    KT_CHECK_STR(code, "X[2J: mn", "control characters dropped from an error");
    ksv_s3_error_code("<html>502</html>", 16, code, sizeof code);
    KT_CHECK_STR(code, "", "not an S3 error: no code");
    ksv_s3_error_code("<Error><Code>", 13, code, sizeof code);
    KT_CHECK_STR(code, "", "a truncated error: no code");
}

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static void never_crash(void)
{
    size_t len = strlen(page1), ok = 0;
    char *buf = malloc(len + 1);
    for (size_t cut = 0; cut < len; cut++) {
        memcpy(buf, page1, cut);
        ksv_s3_list l = {0};
        ksv_err err;
        ok += ksv_s3_parse_list(buf, cut, &l, &err) == 0;
        ksv_s3_list_free(&l);
    }
    KT_CHECK(ok == 0, "no proper prefix of a page parses (%zu did)", ok);
    uint64_t seed = 42;
    size_t parsed = 0;
    for (int round = 0; round < 20000; round++) {
        memcpy(buf, page1, len);
        int flips = 1 + (int)(next(&seed) % 4);
        for (int f = 0; f < flips; f++)
            buf[next(&seed) % len] = (char)(next(&seed) & 0xff);
        ksv_s3_list l = {0};
        ksv_err err;
        parsed += ksv_s3_parse_list(buf, len, &l, &err) == 0;
        for (size_t i = 0; i < l.n; i++)
            KT_CHECK(l.v[i].key && l.v[i].size >= 0, "a parsed object has a key and a size");
        char code[100];
        ksv_s3_error_code(buf, len, code, sizeof code);
        ksv_s3_list_free(&l);
    }
    KT_CHECK(true, "20,000 mutated pages read without a crash (%zu still parsed)", parsed);
    free(buf);
}

int main(void)
{
    good_pages();
    hostile();
    errors();
    never_crash();
    return kt_summary("test_s3_xml");
}
