/* labels.h: node labels (KEY=VALUE) and the selectors that pick nodes by them.
 *
 * Syntax as Kubernetes labels, so what operators know from kubectl holds:
 *   key     [PREFIX/]NAME: NAME 1..63 of [A-Za-z0-9._-], starting and ending alphanumeric;
 *           PREFIX a DNS subdomain of at most 253 ([a-z0-9.-], labels alphanumeric at both
 *           ends), e.g. "region", "ksv.io/gpu".
 *   value   0..63 of [A-Za-z0-9._-], starting and ending alphanumeric when not empty.
 *   selector  requirements joined by commas, all of which must hold:
 *           K=V or K==V (the label is V), K!=V (absent or not V), K (present), !K (absent).
 * Pure functions; no I/O. */
#ifndef KSV_COMMON_LABELS_H
#define KSV_COMMON_LABELS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

#define KSV_LABEL_KEY_MAX 317   /* 253 + '/' + 63 */
#define KSV_LABEL_VALUE_MAX 63
#define KSV_SELECTOR_MAX_TERMS 32

/* 0, or -1 with err (status 400) saying what is wrong with it. */
int ksv_label_key_check(const char *key, ksv_err *err);
int ksv_label_value_check(const char *value, ksv_err *err);

/* "K=V" into key and value (each checked); "K-" (removal) gives *remove = true and an
 * empty value. remove may be NULL: then "K-" is refused. */
int ksv_label_parse_arg(const char *arg, char *key, size_t key_cap, char *value,
                        size_t value_cap, bool *remove, ksv_err *err);

typedef enum ksv_selector_op {
    KSV_SEL_EQ,       /* K=V, K==V */
    KSV_SEL_NE,       /* K!=V */
    KSV_SEL_EXISTS,   /* K */
    KSV_SEL_ABSENT,   /* !K */
} ksv_selector_op;

typedef struct ksv_selector_term {
    ksv_selector_op op;
    char key[KSV_LABEL_KEY_MAX + 1];
    char value[KSV_LABEL_VALUE_MAX + 1];
} ksv_selector_term;

typedef struct ksv_selector {
    size_t n;
    ksv_selector_term terms[KSV_SELECTOR_MAX_TERMS];
} ksv_selector;

/* Parses text (spaces around terms allowed); an empty selector is refused (it would pick
 * every node by accident). 400 with the offending term on error. */
int ksv_selector_parse(const char *text, ksv_selector *out, ksv_err *err);
/* Whether labels (keys[i]=values[i], n of them) satisfy every term. */
bool ksv_selector_matches(const ksv_selector *sel, const char *const *keys,
                          const char *const *values, size_t n);

#endif
