/* s3_xml.h: the two S3 replies ksv reads, ListObjectsV2's <ListBucketResult> and an
 * <Error>, with a small strict XML reader: elements, attributes (skipped), text, CDATA,
 * comments and the XML declaration; the five predefined entities and character references
 * (decoded to UTF-8); no DTD (a reply with <!DOCTYPE is refused, so no entity can expand),
 * nesting at most 32 deep, names and text bounded, the text UTF-8. Anything else is a
 * clear error, never a crash: the reply comes from a server ksv does not control. */
#ifndef KSV_ENGINE_S3_XML_H
#define KSV_ENGINE_S3_XML_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

typedef struct ksv_s3_object {
    char *key;
    long long size;
    char etag[80];
} ksv_s3_object;

typedef struct ksv_s3_list {
    ksv_s3_object *v;
    size_t n, cap;
    bool truncated;               /* IsTruncated: another page follows */
    char *next_token;             /* NextContinuationToken of the last page read */
} ksv_s3_list;

/* Appends one page's objects to list (and sets truncated / next_token). Keys are decoded
 * from URL encoding when the reply says <EncodingType>url</EncodingType>. 502 on a reply
 * that is not a well-formed listing. */
int ksv_s3_parse_list(const char *xml, size_t len, ksv_s3_list *list, ksv_err *err);
void ksv_s3_list_free(ksv_s3_list *list);

/* "CODE: MESSAGE" from an S3 <Error> reply (control characters dropped), "" when the
 * body is not one. */
void ksv_s3_error_code(const char *body, size_t len, char *out, size_t cap);

#endif
