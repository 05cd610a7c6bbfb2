/* openai_api.h: KServe's OpenAI-compatible routes on the engine, for models served by an
 * external runtime that speaks OpenAI (protocol "openai", e.g. llama.cpp's server):
 *   POST /openai/v1/completions, POST /openai/v1/chat/completions  (body "model" names the
 *        InferenceService; "stream": true relays Server-Sent Events as they arrive)
 *   GET  /openai/v1/models
 * The traffic split picks the revision as for V2. Token figures (llm_stats.h) come from
 * the stream's chunks, else from the answer's usage block. */
#ifndef KSV_ENGINE_OPENAI_API_H
#define KSV_ENGINE_OPENAI_API_H

#include "engine/http.h"

void ksv_handle_openai(const ksv_http_request *req, ksv_http_response *resp);

#endif
