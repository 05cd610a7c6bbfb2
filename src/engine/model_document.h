/* model_document.h: ksv's one reader and validator of model documents. Every runtime that
 * loads an XGBoost model file (ksv-xgboost through libxgboost, ksv-forest into its own
 * layout) reads it here first, so a broken document is refused by the same rule and in the
 * same words whichever runtime was asked; each runtime then refuses only what it cannot
 * serve. A LightGBM reader would fill the same ksv_model_doc.
 *
 * Reading: the file whole (a regular file, not empty); its format by extension (.json,
 * .ubj, .bst); a document by its content, as XGBoost tells them apart (after a UTF-8
 * byte-order mark and white space, '{' then '"', '}' or white space is JSON text, '{' then
 * anything else UBJSON); JSON with json-c (exactly one value), UBJSON with ubjson.h
 * (bounded, never past its buffer).
 *
 * Checking: what XGBoost's loader and predictor and ksv-forest's compiler use without
 * checking: parameter counts in range; trees, tree_info and num_trees in agreement; output
 * groups; per tree, node arrays of num_nodes elements of the right type, children inside
 * the tree with right == left + 1 (XGBoost's predictor steps to left + 1), every node
 * reached at most once from node 0 (a cycle would loop forever), split features below
 * num_feature, parents in range, split types 0 or 1, category segments inside their array;
 * gblinear weights one per feature and group plus a bias per group. A checked document is
 * walked without further checks.
 *
 * Errors: 400 "model file PATH: WHAT" ("model: WHAT" for a nameless buffer), 404 for a
 * missing file, 500 out of memory. */
#ifndef KSV_ENGINE_MODEL_DOCUMENT_H
#define KSV_ENGINE_MODEL_DOCUMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* Sets err to "model file NAME: WHAT" ("model: WHAT" when name is NULL) and returns -1:
 * how every runtime words a refusal of a model file, its own ones included. */
int ksv_model_fail(ksv_err *err, const char *name, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

typedef enum { KSV_MODEL_JSON, KSV_MODEL_UBJSON, KSV_MODEL_LEGACY } ksv_model_format;

/* The format a model file's name says (.json, .ubj, .bst, any case); 400 otherwise. */
int ksv_model_file_format(const char *path, ksv_model_format *out, ksv_err *err);
/* Reads the whole regular, non-empty file into *data (malloc'd, the caller's). */
int ksv_model_file_read(const char *path, char **data, size_t *len, ksv_err *err);
/* Bytes before the document: a UTF-8 byte-order mark and white space, which XGBoost's
 * buffer loader does not expect. */
size_t ksv_model_doc_lead(const void *data, size_t len);

/* One tree, in XGBoost's node numbering. */
typedef struct ksv_model_tree {
    int32_t num_nodes;
    int32_t group;              /* the output group it adds to (tree_info) */
    int32_t *left, *right;      /* children; left == -1 at a leaf */
    int32_t *feature;           /* split feature */
    float *value;               /* split condition, or the leaf's value */
    uint8_t *default_left;      /* 1: a missing value goes left */
    int64_t leaf_vector;        /* size_leaf_vector: 0 or 1 for scalar leaves */
    bool categorical;           /* it has categorical splits */
    uint32_t depth;             /* deepest leaf below node 0 (node 0 alone: 0) */
    uint32_t reachable;         /* nodes reached from node 0 */
} ksv_model_tree;

/* A checked tree ensemble. Strings are "" when the document leaves them out. */
typedef struct ksv_model_doc {
    char version[32];           /* of the XGBoost that wrote it, "1.7.4" */
    char objective[64];         /* learner.objective.name */
    char booster[16];           /* gbtree, dart or gblinear */
    char *base_score;           /* learner_model_param.base_score; NULL when absent */
    uint32_t num_feature;
    uint32_t num_class;
    uint32_t num_groups;        /* max(num_class, num_target, 1): margins per row */
    bool categorical_features;  /* learner.feature_types names one "c" */
    bool weight_drop;           /* dart weights are present */
    size_t num_trees;
    ksv_model_tree *trees;
    size_t num_weights;         /* gblinear: (num_feature + 1) * num_groups */
    float *weights;
} ksv_model_doc;

/* How to parse: by content (what files get), or one parser only (tests and fuzzing). */
typedef enum { KSV_DOC_SNIFF, KSV_DOC_JSON_TEXT, KSV_DOC_UBJSON_BYTES } ksv_doc_parse;
/* Parses data and checks it into *doc (free it with ksv_model_doc_free, also after a
 * failure). name: the file, or NULL. */
int ksv_model_doc_parse(const char *name, const void *data, size_t len, ksv_doc_parse how,
                        ksv_model_doc *doc, ksv_err *err);
/* ksv_model_file_format, ksv_model_file_read and ksv_model_doc_parse; a .bst file is
 * refused with "legacy binary" in the message (XGBoost's own reader is the only one). */
int ksv_model_doc_read_file(const char *path, ksv_model_doc *doc, ksv_err *err);
void ksv_model_doc_free(ksv_model_doc *doc);

#endif
