/* SPDX-License-Identifier: MIT */
/*
 * http_fields.c - request bodies checked against field specs: each route declares its fields as
 * data (name, type, required, bounds, choices), as cfg_table does for the config, and one checker
 * refuses unknown keys (typos do not pass silently), missing required ones, wrong types and
 * out-of-range values with a 400 whose message names the field. Field names echoed from the
 * request are cut at a character boundary and made valid UTF-8.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "http_int.h"
#include "ragd/util.h"

#define NAME_ECHO_MAX 96

json_t *http_body_object(const char *body, size_t len, http_reply *reply)
{
    if (body == NULL || len == 0) {
        *reply = http_reply_error(RAGD_ERR_INVALID, "invalid_json",
                                  "request body is empty; expected a JSON object");
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        *reply = http_reply_errorf(RAGD_ERR_INVALID, "invalid_json",
                                   "malformed JSON at line %d column %d: %s", jerr.line,
                                   jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        *reply = http_reply_error(RAGD_ERR_INVALID, NULL, "request body must be a JSON object");
        return NULL;
    }
    return root;
}

/* Returns: a phrase for what a field must be ("an integer between 1 and 50"), in buf. */
static const char *field_expect(const http_field *f, const ragd_cfg *cfg, char *buf, size_t n)
{
    double max = f->max_of && cfg ? (double)f->max_of(cfg) : f->max;
    int bounded = f->min != 0 || max != 0;
    switch (f->type) {
    case HTTP_FIELD_STRING:
        if (f->choices) {
            util_buf b = {0};
            for (size_t i = 0; f->choices[i]; i++)
                util_buf_printf(&b, "%s\"%s\"", i == 0 ? "" : f->choices[i + 1] ? ", " : " or ",
                                f->choices[i]);
            snprintf(buf, n, "%s", b.data ? b.data : "");
            util_buf_free(&b);
        } else if (f->flags & HTTP_FIELD_NONBLANK) {
            snprintf(buf, n, "a non-empty string of at most %.0f bytes", max);
        } else if (bounded) {
            snprintf(buf, n, "a string of %.0f..%.0f bytes", f->min, max);
        } else {
            snprintf(buf, n, "a string");
        }
        break;
    case HTTP_FIELD_INT:
        if (bounded) snprintf(buf, n, "an integer between %.0f and %.0f", f->min, max);
        else snprintf(buf, n, "an integer");
        break;
    case HTTP_FIELD_NUMBER:
        if (bounded) snprintf(buf, n, "a number between %g and %g", f->min, max);
        else snprintf(buf, n, "a number");
        break;
    case HTTP_FIELD_BOOL: snprintf(buf, n, "true or false"); break;
    case HTTP_FIELD_OBJECT: snprintf(buf, n, "an object"); break;
    case HTTP_FIELD_STRINGS:
        if (max > 0) snprintf(buf, n, "an array of at most %.0f strings", max);
        else snprintf(buf, n, "an array of strings");
        break;
    case HTTP_FIELD_ANY: snprintf(buf, n, "a JSON value"); break;
    }
    return buf;
}

/* Returns: 1 when v satisfies f. */
static int field_ok(const http_field *f, json_t *v, const ragd_cfg *cfg)
{
    double max = f->max_of && cfg ? (double)f->max_of(cfg) : f->max;
    int bounded = f->min != 0 || max != 0;
    switch (f->type) {
    case HTTP_FIELD_STRING: {
        if (!json_is_string(v)) return 0;
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (f->choices) {
            for (size_t i = 0; f->choices[i]; i++)
                if (strcmp(f->choices[i], s) == 0 && strlen(s) == len) return 1;
            return 0;
        }
        if (f->flags & HTTP_FIELD_NONBLANK) {
            size_t nonspace = 0;
            for (size_t i = 0; i < len; i++)
                nonspace += !(s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r'));
            if (nonspace == 0) return 0;
        }
        return !bounded || ((double)len >= f->min && (double)len <= max);
    }
    case HTTP_FIELD_INT: {
        if (!json_is_integer(v)) return 0;
        double x = (double)json_integer_value(v);
        return !bounded || (x >= f->min && x <= max);
    }
    case HTTP_FIELD_NUMBER: {
        if (!json_is_number(v) || !isfinite(json_number_value(v))) return 0;
        double x = json_number_value(v);
        return !bounded || (x >= f->min && x <= max);
    }
    case HTTP_FIELD_BOOL: return json_is_boolean(v);
    case HTTP_FIELD_OBJECT: return json_is_object(v);
    case HTTP_FIELD_STRINGS: {
        if (!json_is_array(v) || (max > 0 && (double)json_array_size(v) > max)) return 0;
        for (size_t i = 0; i < json_array_size(v); i++)
            if (!json_is_string(json_array_get(v, i))) return 0;
        return 1;
    }
    case HTTP_FIELD_ANY: return 1;
    }
    return 0;
}

int http_fields_check(json_t *obj, const http_field *spec, size_t n, const char *prefix,
                      const ragd_cfg *cfg, http_reply *reply)
{
    char expect[256];
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        size_t i = 0;
        while (i < n && strcmp(spec[i].name, key) != 0) i++;
        if (i < n) continue;
        char name[NAME_ECHO_MAX];
        util_utf8_clip(name, sizeof name, key, strlen(key));
        util_buf known = {0};
        for (size_t k = 0; k < n; k++)
            util_buf_printf(&known, "%s%s", k ? ", " : "", spec[k].name);
        *reply = http_reply_errorf(RAGD_ERR_INVALID, NULL,
                                   "unknown field '%s%s'%s; known fields: %s", prefix, name,
                                   *prefix ? "" : " in the request",
                                   known.data ? known.data : "");
        util_buf_free(&known);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const http_field *f = &spec[i];
        v = json_object_get(obj, f->name);
        if (v == NULL) {
            if (!(f->flags & HTTP_FIELD_REQUIRED)) continue;
            *reply = http_reply_errorf(RAGD_ERR_INVALID, NULL, "missing field '%s%s' (%s)",
                                       prefix, f->name,
                                       field_expect(f, cfg, expect, sizeof expect));
            return -1;
        }
        if (field_ok(f, v, cfg)) continue;
        char got[64] = "";
        if (f->type == HTTP_FIELD_INT && json_is_integer(v))
            snprintf(got, sizeof got, " (got %lld)", (long long)json_integer_value(v));
        *reply = http_reply_errorf(RAGD_ERR_INVALID, NULL, "field '%s%s' must be %s%s", prefix,
                                   f->name, field_expect(f, cfg, expect, sizeof expect), got);
        return -1;
    }
    return 0;
}
