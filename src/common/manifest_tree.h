/* manifest_tree.h: the positioned document tree the manifest readers share (private to
 * src/common/manifest*.c).
 *
 * YAML (libyaml) and JSON (json-c) files are both read into this tree so that validation
 * can name the line and column of every value, whichever syntax it came from. Scalars are
 * already typed (YAML 1.2 core schema for plain scalars; JSON types for JSON). Aliases are
 * expanded into copies while reading, under a node budget, so the tree is a plain tree. */
#ifndef KSV_COMMON_MANIFEST_TREE_H
#define KSV_COMMON_MANIFEST_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/manifest.h"

/* Limits that keep hostile input bounded (alias bombs, deep nesting, huge files). */
#define KSV_MANIFEST_MAX_DEPTH 64
#define KSV_MANIFEST_MAX_NODES 200000u /* per file, counting alias expansions */

typedef enum {
    MN_NULL,
    MN_BOOL,
    MN_INT,
    MN_FLOAT,
    MN_STRING,
    MN_MAP,
    MN_SEQ,
} mn_type;

typedef struct mnode mnode;

typedef struct mn_entry {
    char *key;
    int line, col; /* of the key */
    mnode *value;
} mn_entry;

struct mnode {
    mn_type type;
    int line, col; /* 1-based position of the value's first character */
    bool b;
    int64_t i;
    double d;
    char *str;       /* MN_STRING value; for numbers, the text as written */
    mn_entry *entries; /* MN_MAP */
    mnode **items;     /* MN_SEQ */
    size_t n, cap;
};

/* One document of a file: its root (NULL for an empty document) and where it starts. */
typedef struct mn_doc {
    mnode *root;
    int line;
} mn_doc;

typedef struct mn_docs {
    mn_doc *docs;
    size_t n, cap;
} mn_docs;

mnode *mn_new(mn_type type, int line, int col);
void mn_free(mnode *node);
void mn_docs_free(mn_docs *docs);
bool mn_docs_push(mn_docs *docs, mnode *root, int line);

/* Appends to a map, taking ownership of key and value (freed on failure). */
bool mn_map_add(mnode *map, char *key, int line, int col, mnode *value);
bool mn_seq_add(mnode *seq, mnode *item);
/* The entry for key, or NULL. */
mn_entry *mn_map_find(const mnode *map, const char *key);
mnode *mn_map_get(const mnode *map, const char *key);
/* What a document may still expand to. Every node takes one node and its expanded bytes
 * (its record, its string, its keys): aliases are budgeted by what they cost. */
typedef struct mn_budget {
    size_t nodes;
    size_t bytes;
    bool exhausted;               /* set when a take was refused */
} mn_budget;
/* Takes one node of `bytes` (the record's own size is added); false (and exhausted set)
 * when either runs out. */
bool mn_budget_take(mn_budget *b, size_t bytes);
/* A deep copy, charged to budget; NULL when the budget runs out (budget->exhausted) or on
 * allocation failure. */
mnode *mn_copy(const mnode *node, mn_budget *budget);
/* The tree as json-c objects (caller owns the result); NULL on allocation failure, with
 * *ok set false (a JSON null is also NULL, with *ok left true). */
json_object *mn_to_json(const mnode *node, bool *ok);
const char *mn_type_name(mn_type type);

/* Readers. `name` is the file's display name used in messages. Both fill docs (caller
 * frees with mn_docs_free) or return -1 with "name:line:col: reason" in err. */
int mn_read_yaml(const char *text, size_t len, const char *name, mn_docs *docs, ksv_err *err);
int mn_read_json(const char *text, size_t len, const char *name, mn_docs *docs, ksv_err *err);

/* resource_quota.c: reads one ResourceQuota document into out->quotas. */
int ksv_manifest_read_quota_(const mnode *root, int line, const char *file,
                             ksv_manifest_list *out, ksv_err *err);

/* manifest_canary.c: reads one Canary document into out->canaries. */
int ksv_manifest_read_canary_(const mnode *root, int line, const char *file,
                              ksv_manifest_list *out, ksv_err *err);

#endif
