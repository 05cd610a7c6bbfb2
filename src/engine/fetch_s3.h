/* fetch_s3.h: s3://BUCKET/KEY and s3://BUCKET/PREFIX, configured as KServe's storage
 * initializer is, from the engine's environment:
 *
 *   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN   credentials; else the
 *       profile AWS_PROFILE (default "default") of AWS_SHARED_CREDENTIALS_FILE or
 *       ~/.aws/credentials; else anonymous (unsigned requests, for public buckets)
 *   AWS_DEFAULT_REGION or AWS_REGION                               default us-east-1
 *   AWS_ENDPOINT_URL or S3_ENDPOINT                                an S3-compatible store
 *       (path-style requests); without a scheme, https unless S3_USE_HTTPS=0
 *   S3_VERIFY_SSL=0                                                no TLS verification
 *   AWS_CA_BUNDLE                                                  an extra CA bundle
 *
 * Requests are signed with AWS Signature V4 by libcurl (CURLOPT_AWS_SIGV4). A key names one
 * object; otherwise every object under PREFIX/ is fetched (ListObjectsV2, every page),
 * keeping the folder layout. Each object resumes with a Range request from the bytes a
 * broken try left (keyed by its ETag and size, so a changed object starts over). Errors name
 * the URI, the HTTP status and the S3 error code. */
#ifndef KSV_ENGINE_FETCH_S3_H
#define KSV_ENGINE_FETCH_S3_H

#include "common/error.h"
#include "engine/cache.h"
#include "engine/storage.h"

/* Fetches uri into the scratch folder `staged`. */
int ksv_fetch_s3(const char *uri, ksv_cache *cache, const char *staged,
                 const ksv_fetch_ctl *ctl, ksv_err *err);

#endif
