/* SPDX-License-Identifier: MIT */
/*
 * retrieve_filter.c - parsing and evaluating OpenAI-style metadata filters (include/ragd/filter.h).
 * Parsing checks everything up front (types, fields, value shapes, depth and size limits) and
 * names the offending part in its message, so evaluation cannot fail: it is a plain walk over
 * the tree. A metadata value that is a string holding a number compares numerically with a
 * numeric filter value (front matter values are strings: "year: 2021" matches gte 2020).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ragd/filter.h"
#include "ragd/util.h"

#define IN_VALUES_MAX 256

typedef enum op { OP_EQ, OP_NE, OP_GT, OP_GTE, OP_LT, OP_LTE, OP_IN, OP_NIN, OP_AND, OP_OR } op;

static const char *const op_names[] = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "and",
                                       "or"};

typedef enum key_kind { KEY_META, KEY_SOURCE, KEY_TAGS, KEY_PAGE } key_kind;

struct retrieve_filter {
    op type;
    key_kind kind;
    char *key;
    json_t *value; /* own reference */
    retrieve_filter **children;
    size_t count;
};

void retrieve_filter_free(retrieve_filter *f)
{
    if (f == NULL) return;
    for (size_t i = 0; i < f->count; i++) retrieve_filter_free(f->children[i]);
    free(f->children);
    free(f->key);
    json_decref(f->value);
    free(f);
}

static int is_scalar(const json_t *v)
{
    return json_is_string(v) || json_is_number(v) || json_is_boolean(v);
}

/* Refuses fields other than allowed (NULL-terminated). Returns: 0 or -1 with err set. */
static int fields_check(const json_t *o, const char *const *allowed, const char *where,
                        ragd_err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        int ok = 0;
        for (size_t i = 0; allowed[i] && !ok; i++) ok = strcmp(k, allowed[i]) == 0;
        if (!ok) {
            char name[72];
            util_utf8_clip(name, sizeof name, k, strlen(k));
            ragd_err_set(err, RAGD_ERR_INVALID, "%s.%s: unknown field in a '%s' filter",
                         where, name, json_string_value(json_object_get(o, "type")));
            return -1;
        }
    }
    return 0;
}

static ragd_rc parse_node(const json_t *j, const char *where, int depth, size_t *nodes,
                          retrieve_filter **out, ragd_err *err)
{
    if (!json_is_object(j))
        return ragd_err_set(err, RAGD_ERR_INVALID, "%s: a filter must be an object with a "
                            "'type'", where);
    if (++*nodes > RETRIEVE_FILTER_MAX_NODES)
        return ragd_err_set(err, RAGD_ERR_INVALID, "%s: too many filters (at most %d in all)",
                            where, RETRIEVE_FILTER_MAX_NODES);
    if (depth > RETRIEVE_FILTER_MAX_DEPTH)
        return ragd_err_set(err, RAGD_ERR_INVALID, "%s: filters nested too deep (at most %d "
                            "levels)", where, RETRIEVE_FILTER_MAX_DEPTH);
    const json_t *t = json_object_get(j, "type");
    if (t == NULL)
        return ragd_err_set(err, RAGD_ERR_INVALID, "%s.type: missing (one of eq, ne, gt, gte, "
                            "lt, lte, in, nin, and, or)", where);
    if (!json_is_string(t))
        return ragd_err_set(err, RAGD_ERR_INVALID, "%s.type: must be a string", where);
    int type = -1;
    for (int i = 0; i < (int)(sizeof op_names / sizeof op_names[0]); i++)
        if (strcmp(json_string_value(t), op_names[i]) == 0) type = i;
    if (type < 0) {
        char name[48];
        util_utf8_clip(name, sizeof name, json_string_value(t), json_string_length(t));
        return ragd_err_set(err, RAGD_ERR_INVALID, "%s.type: unknown filter type '%s' "
                            "(expected eq, ne, gt, gte, lt, lte, in, nin, and, or)", where,
                            name);
    }
    retrieve_filter *f = calloc(1, sizeof *f);
    if (f == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "filter: out of memory");
    f->type = (op)type;
    ragd_rc rc = RAGD_OK;
    char sub[256];
    if (f->type == OP_AND || f->type == OP_OR) {
        static const char *const allowed[] = {"type", "filters", NULL};
        const json_t *list = json_object_get(j, "filters");
        if (fields_check(j, allowed, where, err) != 0) {
            rc = RAGD_ERR_INVALID;
        } else if (!json_is_array(list) || json_array_size(list) == 0) {
            rc = ragd_err_set(err, RAGD_ERR_INVALID, "%s.filters: must be a non-empty array of "
                              "filters", where);
        } else {
            size_t n = json_array_size(list);
            f->children = calloc(n, sizeof *f->children);
            if (f->children == NULL) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
            for (size_t i = 0; rc == RAGD_OK && i < n; i++) {
                snprintf(sub, sizeof sub, "%s.filters[%zu]", where, i);
                rc = parse_node(json_array_get(list, i), sub, depth + 1, nodes,
                                &f->children[i], err);
                if (rc == RAGD_OK) f->count++;
            }
        }
    } else {
        static const char *const allowed[] = {"type", "key", "value", NULL};
        const json_t *k = json_object_get(j, "key");
        const json_t *v = json_object_get(j, "value");
        int set = f->type == OP_IN || f->type == OP_NIN;
        int order = f->type >= OP_GT && f->type <= OP_LTE;
        if (fields_check(j, allowed, where, err) != 0) {
            rc = RAGD_ERR_INVALID;
        } else if (!json_is_string(k) || json_string_length(k) == 0) {
            rc = ragd_err_set(err, RAGD_ERR_INVALID, "%s.key: must be a non-empty string (a "
                              "metadata key, or source, tags, page)", where);
        } else if (v == NULL) {
            rc = ragd_err_set(err, RAGD_ERR_INVALID, "%s.value: missing", where);
        } else if (set && !(json_is_array(v) && json_array_size(v) <= IN_VALUES_MAX)) {
            rc = ragd_err_set(err, RAGD_ERR_INVALID, "%s.value: '%s' takes an array of at most "
                              "%d strings, numbers or booleans", where, op_names[f->type],
                              IN_VALUES_MAX);
        } else if (order && !(json_is_number(v) || json_is_string(v))) {
            rc = ragd_err_set(err, RAGD_ERR_INVALID, "%s.value: '%s' takes a number or a string",
                              where, op_names[f->type]);
        } else if (!set && !order && !is_scalar(v)) {
            rc = ragd_err_set(err, RAGD_ERR_INVALID, "%s.value: '%s' takes a string, number or "
                              "boolean", where, op_names[f->type]);
        }
        if (rc == RAGD_OK && set) {
            size_t i;
            json_t *e;
            json_array_foreach((json_t *)v, i, e) {
                if (!is_scalar(e)) {
                    rc = ragd_err_set(err, RAGD_ERR_INVALID, "%s.value[%zu]: must be a string, "
                                      "number or boolean", where, i);
                    break;
                }
            }
        }
        if (rc == RAGD_OK) {
            const char *key = json_string_value(k);
            f->kind = strcmp(key, "source") == 0 ? KEY_SOURCE
                      : strcmp(key, "tags") == 0 ? KEY_TAGS
                      : strcmp(key, "page") == 0 ? KEY_PAGE : KEY_META;
            if ((f->kind == KEY_SOURCE || f->kind == KEY_TAGS) && order)
                rc = ragd_err_set(err, RAGD_ERR_INVALID, "%s.type: '%s' supports eq, ne, in and "
                                  "nin, not '%s'", where, key, op_names[f->type]);
            if (rc == RAGD_OK && (f->kind == KEY_SOURCE || f->kind == KEY_TAGS)) {
                int ok = set ? 1 : json_is_string(v);
                for (size_t i = 0; set && i < json_array_size(v); i++)
                    ok &= json_is_string(json_array_get(v, i));
                if (!ok)
                    rc = ragd_err_set(err, RAGD_ERR_INVALID, "%s.value: '%s' compares strings",
                                      where, key);
            }
            if (rc == RAGD_OK && f->kind == KEY_PAGE && !set && !json_is_number(v))
                rc = ragd_err_set(err, RAGD_ERR_INVALID, "%s.value: 'page' compares numbers",
                                  where);
        }
        if (rc == RAGD_OK) {
            f->key = strdup(json_string_value(k));
            f->value = json_deep_copy(v);
            if (f->key == NULL || f->value == NULL)
                rc = ragd_err_set(err, RAGD_ERR_NOMEM, "filter: out of memory");
        }
    }
    if (rc != RAGD_OK) {
        retrieve_filter_free(f);
        return rc;
    }
    *out = f;
    return RAGD_OK;
}

ragd_rc retrieve_filter_parse(const json_t *json, const char *where, retrieve_filter **out,
                              ragd_err *err)
{
    size_t nodes = 0;
    return parse_node(json, where ? where : "filters", 1, &nodes, out, err);
}

/* Returns: 1 and *d when v is a number or a string holding a whole finite number. */
static int as_number(const json_t *v, double *d)
{
    if (json_is_number(v)) {
        *d = json_number_value(v);
        return 1;
    }
    if (!json_is_string(v) || json_string_length(v) == 0) return 0;
    char *end = NULL;
    *d = strtod(json_string_value(v), &end);
    return end && *end == '\0' && isfinite(*d);
}

static int scalar_eq(const json_t *a, const json_t *b)
{
    double x, y;
    if (json_is_number(b) && as_number(a, &x) && as_number(b, &y)) return x == y;
    if (json_is_string(a) && json_is_string(b))
        return strcmp(json_string_value(a), json_string_value(b)) == 0;
    if (json_is_boolean(a) && json_is_boolean(b)) return json_is_true(a) == json_is_true(b);
    return 0;
}

/* Returns: -2 when a and b are not comparable, else -1, 0, 1 (a vs b). */
static int scalar_cmp(const json_t *a, const json_t *b)
{
    double x, y;
    if (json_is_number(b)) {
        if (!as_number(a, &x) || !as_number(b, &y)) return -2;
        return x < y ? -1 : x > y;
    }
    if (json_is_string(a) && json_is_string(b)) {
        int c = strcmp(json_string_value(a), json_string_value(b));
        return c < 0 ? -1 : c > 0;
    }
    return -2;
}

/* Returns: 1 if the value v (scalar or array: any element) equals some of f's values. */
static int value_in(const json_t *v, const retrieve_filter *f)
{
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach((json_t *)v, i, e) if (value_in(e, f)) return 1;
        return 0;
    }
    if (!json_is_array(f->value)) return scalar_eq(v, f->value);
    size_t i;
    json_t *e;
    json_array_foreach(f->value, i, e) if (scalar_eq(v, e)) return 1;
    return 0;
}

static int prefix_in(const char *source, const retrieve_filter *f)
{
    if (json_is_string(f->value))
        return strncmp(source, json_string_value(f->value), json_string_length(f->value)) == 0;
    size_t i;
    json_t *e;
    json_array_foreach(f->value, i, e) {
        if (strncmp(source, json_string_value(e), json_string_length(e)) == 0) return 1;
    }
    return 0;
}

int retrieve_filter_match(const retrieve_filter *f, const char *source, const json_t *tags,
                          const json_t *metadata, int page)
{
    switch (f->type) {
    case OP_AND:
        for (size_t i = 0; i < f->count; i++)
            if (!retrieve_filter_match(f->children[i], source, tags, metadata, page)) return 0;
        return 1;
    case OP_OR:
        for (size_t i = 0; i < f->count; i++)
            if (retrieve_filter_match(f->children[i], source, tags, metadata, page)) return 1;
        return 0;
    default: break;
    }
    int negate = f->type == OP_NE || f->type == OP_NIN;
    if (f->kind == KEY_SOURCE) return prefix_in(source ? source : "", f) != negate;
    if (f->kind == KEY_TAGS) return (tags ? value_in(tags, f) : 0) != negate;
    json_t *pv = NULL;
    const json_t *v;
    if (f->kind == KEY_PAGE) {
        v = pv = json_integer(page);
    } else {
        v = metadata ? json_object_get(metadata, f->key) : NULL;
        if (v == NULL) return negate; /* a missing key is "not equal" and "not in" */
    }
    int r;
    if (f->type == OP_EQ || f->type == OP_NE || f->type == OP_IN || f->type == OP_NIN) {
        r = value_in(v, f) != negate;
    } else {
        int c = scalar_cmp(v, f->value);
        r = c != -2 && ((f->type == OP_GT && c > 0) || (f->type == OP_GTE && c >= 0) ||
                        (f->type == OP_LT && c < 0) || (f->type == OP_LTE && c <= 0));
    }
    json_decref(pv);
    return r;
}
