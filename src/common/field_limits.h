/* field_limits.h: the ONE set of name and field limits that the manifest reader, the store and
 * the engine all check, so a value one of them accepts is never refused by another (a
 * manifest stored as a healthy revision that every node then refuses forever).
 *
 * Names are DNS-1123 labels (KServe's rule, which Kubernetes applies to every object it
 * serves): 1..63 of [a-z0-9-], alphanumeric at both ends. A revision is named
 * MODEL-NNNNN (ksv's form of KServe's "-predictor-00001"), so a model name is at most
 * 63 - 6 = 57 characters and a model has at most 99999 revisions: the revision name
 * always fits the 63 the engine allows. */
#ifndef KSV_COMMON_FIELD_LIMITS_H
#define KSV_COMMON_FIELD_LIMITS_H

#include <stdbool.h>
#include <stddef.h>

#define KSV_DNS_LABEL_MAX 63
#define KSV_REVISION_SEQ_DIGITS 5
#define KSV_REVISION_SEQ_MAX 99999
/* "MODEL-" + 5 digits must fit a label (a literal so messages can quote it). */
#define KSV_MODEL_NAME_MAX 57
_Static_assert(KSV_MODEL_NAME_MAX + 1 + KSV_REVISION_SEQ_DIGITS == KSV_DNS_LABEL_MAX,
               "a revision name MODEL-NNNNN must fit a DNS label");
#define KSV_NAMESPACE_MAX KSV_DNS_LABEL_MAX
#define KSV_NODE_NAME_MAX KSV_DNS_LABEL_MAX
/* A revision name, or a model name the engine serves from --model/--model-dir. */
#define KSV_ENGINE_NAME_MAX KSV_DNS_LABEL_MAX

/* spec.predictor.timeout (seconds) and the engine's timeout_ms: one day at most. */
#define KSV_TIMEOUT_S_MAX 86400
#define KSV_TIMEOUT_MS_MAX (KSV_TIMEOUT_S_MAX * 1000)
/* spec.predictor.minReplicas / maxReplicas (executor instances on one node) and the
 * engine's min_replicas. */
#define KSV_REPLICAS_MAX 1000
/* spec.predictor.containerConcurrency (0: no limit). */
#define KSV_CONTAINER_CONCURRENCY_MAX 1000000

/* NULL when s is a DNS-1123 label of at most max characters; otherwise why not, as a
 * phrase that reads after the quoted value ("is not a DNS-1123 label: ..."). */
const char *ksv_dns_label_problem(const char *s, size_t max);

#endif
