/* fetch_hub.h: two more model stores over plain HTTPS, listed then fetched file by file with
 * the shared downloader (fetch_http.h):
 *
 *   gs://BUCKET/PATH    Google Cloud Storage's JSON API: one object, or every object under
 *                       PATH/ (folder layout kept). Endpoint STORAGE_EMULATOR_HOST (as
 *                       Google's client libraries read it; default
 *                       https://storage.googleapis.com); public objects need nothing, others
 *                       a bearer token in GOOGLE_OAUTH_ACCESS_TOKEN, or a service account
 *                       key file in GOOGLE_APPLICATION_CREDENTIALS (gcp_auth.h).
 *   hf://ORG/REPO[:REVISION][/PATH]
 *                       a Hugging Face Hub model repository: the revision (default main) is
 *                       resolved to its commit first, and every file is fetched from that
 *                       commit's resolve URL, so one fetch never mixes two commits. PATH
 *                       names one file or a folder. Endpoint HF_ENDPOINT (default
 *                       https://huggingface.co), token HF_TOKEN.
 *
 * `pinned` gets the URI with the revision replaced by the commit it resolved to (hf://
 * only; "" otherwise), for the applied state to keep. */
#ifndef KSV_ENGINE_FETCH_HUB_H
#define KSV_ENGINE_FETCH_HUB_H

#include <stddef.h>

#include "common/error.h"
#include "engine/storage.h"

int ksv_fetch_gs(const char *uri, const char *staged, const ksv_fetch_ctl *ctl, ksv_err *err);
int ksv_fetch_hf(const char *uri, const char *staged, const ksv_fetch_ctl *ctl, char *pinned,
                 size_t pinned_cap, ksv_err *err);

#endif
