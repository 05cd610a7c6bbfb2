/* manifest_tree.c: building, copying, freeing and converting the positioned document tree. */
#include "common/manifest_tree.h"

#include <stdlib.h>
#include <string.h>

mnode *mn_new(mn_type type, int line, int col)
{
    mnode *node = calloc(1, sizeof *node);
    if (node) {
        node->type = type;
        node->line = line;
        node->col = col;
    }
    return node;
}

void mn_free(mnode *node)
{
    if (!node)
        return;
    for (size_t k = 0; k < node->n; k++) {
        if (node->type == MN_MAP) {
            free(node->entries[k].key);
            mn_free(node->entries[k].value);
        } else if (node->type == MN_SEQ) {
            mn_free(node->items[k]);
        }
    }
    free(node->entries);
    free(node->items);
    free(node->str);
    free(node);
}

void mn_docs_free(mn_docs *docs)
{
    for (size_t k = 0; k < docs->n; k++)
        mn_free(docs->docs[k].root);
    free(docs->docs);
    docs->docs = NULL;
    docs->n = docs->cap = 0;
}

bool mn_docs_push(mn_docs *docs, mnode *root, int line)
{
    if (docs->n == docs->cap) {
        size_t cap = docs->cap ? docs->cap * 2 : 4;
        mn_doc *grown = realloc(docs->docs, cap * sizeof *grown);
        if (!grown) {
            mn_free(root);
            return false;
        }
        docs->docs = grown;
        docs->cap = cap;
    }
    docs->docs[docs->n].root = root;
    docs->docs[docs->n].line = line;
    docs->n++;
    return true;
}

static bool grow(mnode *node, size_t elem_size, void **array)
{
    if (node->n < node->cap)
        return true;
    size_t cap = node->cap ? node->cap * 2 : 4;
    void *grown = realloc(*array, cap * elem_size);
    if (!grown)
        return false;
    *array = grown;
    node->cap = cap;
    return true;
}

bool mn_map_add(mnode *map, char *key, int line, int col, mnode *value)
{
    void *array = map->entries;
    if (!grow(map, sizeof(mn_entry), &array)) {
        free(key);
        mn_free(value);
        return false;
    }
    map->entries = array;
    map->entries[map->n++] = (mn_entry){.key = key, .line = line, .col = col, .value = value};
    return true;
}

bool mn_seq_add(mnode *seq, mnode *item)
{
    void *array = seq->items;
    if (!grow(seq, sizeof(mnode *), &array)) {
        mn_free(item);
        return false;
    }
    seq->items = array;
    seq->items[seq->n++] = item;
    return true;
}

mn_entry *mn_map_find(const mnode *map, const char *key)
{
    if (!map || map->type != MN_MAP)
        return NULL;
    for (size_t k = 0; k < map->n; k++)
        if (strcmp(map->entries[k].key, key) == 0)
            return &map->entries[k];
    return NULL;
}

mnode *mn_map_get(const mnode *map, const char *key)
{
    mn_entry *entry = mn_map_find(map, key);
    return entry ? entry->value : NULL;
}

bool mn_budget_take(mn_budget *b, size_t bytes)
{
    bytes += sizeof(mnode);
    if (b->nodes == 0 || b->bytes < bytes) {
        b->exhausted = true;
        return false;
    }
    b->nodes--;
    b->bytes -= bytes;
    return true;
}

/* A node's own expanded bytes: its string and its keys (the children are charged apart). */
static size_t node_bytes(const mnode *node)
{
    size_t n = node->str ? strlen(node->str) + 1 : 0;
    if (node->type == MN_MAP)
        for (size_t k = 0; k < node->n; k++)
            n += strlen(node->entries[k].key) + 1 + sizeof(mn_entry);
    else
        n += node->n * sizeof(mnode *);
    return n;
}

mnode *mn_copy(const mnode *node, mn_budget *budget)
{
    if (!node)
        return NULL;
    if (!mn_budget_take(budget, node_bytes(node)))
        return NULL;
    mnode *copy = mn_new(node->type, node->line, node->col);
    if (!copy)
        return NULL;
    copy->b = node->b;
    copy->i = node->i;
    copy->d = node->d;
    if (node->str && !(copy->str = strdup(node->str)))
        goto fail;
    for (size_t k = 0; k < node->n; k++) {
        if (node->type == MN_MAP) {
            const mn_entry *entry = &node->entries[k];
            mnode *value = NULL;
            if (entry->value && !(value = mn_copy(entry->value, budget)))
                goto fail;
            char *key = strdup(entry->key);
            if (!key) {
                mn_free(value);
                goto fail;
            }
            if (!mn_map_add(copy, key, entry->line, entry->col, value))
                goto fail;
        } else {
            mnode *item = mn_copy(node->items[k], budget);
            if (!item || !mn_seq_add(copy, item))
                goto fail;
        }
    }
    return copy;
fail:
    mn_free(copy);
    return NULL;
}

json_object *mn_to_json(const mnode *node, bool *ok)
{
    if (!node)
        return NULL;
    json_object *out = NULL;
    switch (node->type) {
    case MN_NULL:
        return NULL;
    case MN_BOOL:
        out = json_object_new_boolean(node->b);
        break;
    case MN_INT:
        out = json_object_new_int64(node->i);
        break;
    case MN_FLOAT:
        out = json_object_new_double(node->d);
        break;
    case MN_STRING:
        out = json_object_new_string(node->str);
        break;
    case MN_MAP:
        out = json_object_new_object();
        for (size_t k = 0; out && k < node->n; k++) {
            json_object *value = mn_to_json(node->entries[k].value, ok);
            if (!*ok || json_object_object_add(out, node->entries[k].key, value) != 0) {
                json_object_put(value);
                json_object_put(out);
                out = NULL;
            }
        }
        break;
    case MN_SEQ:
        out = json_object_new_array_ext((int)node->n);
        for (size_t k = 0; out && k < node->n; k++) {
            json_object *value = mn_to_json(node->items[k], ok);
            if (!*ok || json_object_array_add(out, value) != 0) {
                json_object_put(value);
                json_object_put(out);
                out = NULL;
            }
        }
        break;
    }
    if (!out)
        *ok = false;
    return out;
}

const char *mn_type_name(mn_type type)
{
    switch (type) {
    case MN_NULL: return "null";
    case MN_BOOL: return "a boolean";
    case MN_INT: return "an integer";
    case MN_FLOAT: return "a number";
    case MN_STRING: return "a string";
    case MN_MAP: return "a map";
    case MN_SEQ: return "a list";
    }
    return "a value";
}
