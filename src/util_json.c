/* SPDX-License-Identifier: MIT */
/*
 * util_json.c - the compact JSON text of a reply body or a log line, written in one pass into one
 * growing buffer: byte for byte what jansson's json_dumps(v, JSON_COMPACT) (with
 * JSON_ENSURE_ASCII when asked) gives (keys in insertion order, "," and ":" without spaces,
 * strings escaped as jansson does, integers as %lld, reals as %.17g (util_double_g17, without
 * printf) with ".0" added to integral values and the exponent's "+" and leading zeros dropped;
 * with ensure_ascii, every character past U+007F as \uXXXX, a surrogate pair past U+FFFF).
 * json_dumps spends a good part of a /retrieve reply's serialisation on its cycle check (a
 * printf of each container's address into a hash table), on one callback per string run, and on
 * copying the finished text once more; replies are built by ragd and hold no cycles, so this
 * writer bounds the depth instead. Whatever it does not handle (a string that is not UTF-8, a
 * depth over the bound) makes it return NULL, and the caller falls back to json_dumps, which
 * then decides exactly as before.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ragd/util.h"

#define JSON_WRITE_DEPTH_MAX 64 /* replies nest a few levels; deeper ones go to json_dumps */

/* Bytes that a JSON string cannot hold as they are (jansson's mandatory escapes): 1 in the table. */
static const unsigned char escape_byte[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1,
};

/* Appends "\uXXXX" (upper-case hex, as jansson writes it) to b. Returns: 0 or -1. */
static int u_escape_write(util_buf *b, unsigned cp)
{
    static const char hex[] = "0123456789ABCDEF";
    char seq[6] = {'\\', 'u', hex[(cp >> 12) & 0xF], hex[(cp >> 8) & 0xF], hex[(cp >> 4) & 0xF],
                   hex[cp & 0xF]};
    return util_buf_append(b, seq, sizeof seq);
}

/* Returns: non-zero when one of the 8 bytes in w needs a look: a control character, '"', '\\',
 * or a byte past 0x7F (exact for the bytes below 0x80, which is all it is asked about). */
static uint64_t word_special(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
    return (w & high) | ((w - ones * 0x20) & ~w & high) | ((q - ones) & ~q & high) |
           ((bs - ones) & ~bs & high);
}

/* Appends s[0..len) to b as a JSON string; with ensure_ascii, characters past U+007F escaped.
 * Returns: 0, or -1 (OOM, or s not valid UTF-8). */
static int string_write(util_buf *b, const char *s, size_t len, int ensure_ascii)
{
    if (util_buf_append(b, "\"", 1) != 0) return -1;
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0, i = 0;
    while (i < len) {
        if (len - i >= 8) { /* plain ASCII goes 8 bytes at a time */
            uint64_t w;
            memcpy(&w, p + i, sizeof w);
            if (!word_special(w)) {
                i += 8;
                continue;
            }
        }
        unsigned char c = p[i];
        if (c < 0x80 && !escape_byte[c]) {
            i++;
            continue;
        }
        if (c >= 0x80) { /* one UTF-8 character, checked as jansson checks it */
            size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            if (n > len - i || !util_utf8_valid(s + i, n)) return -1;
            if (!ensure_ascii) {
                i += n;
                continue;
            }
        }
        if (i > run && util_buf_append(b, s + run, i - run) != 0) return -1;
        int bad = 0;
        if (c >= 0x80) {
            size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            unsigned cp = c & (0x7F >> n);
            for (size_t k = 1; k < n; k++) cp = (cp << 6) | (p[i + k] & 0x3F);
            i += n;
            if (cp < 0x10000) {
                bad = u_escape_write(b, cp);
            } else { /* a UTF-16 surrogate pair */
                cp -= 0x10000;
                bad = u_escape_write(b, 0xD800 | (cp >> 10)) ||
                      u_escape_write(b, 0xDC00 | (cp & 0x3FF));
            }
        } else {
            const char *esc = NULL;
            switch (c) {
            case '\\': esc = "\\\\"; break;
            case '"': esc = "\\\""; break;
            case '\b': esc = "\\b"; break;
            case '\f': esc = "\\f"; break;
            case '\n': esc = "\\n"; break;
            case '\r': esc = "\\r"; break;
            case '\t': esc = "\\t"; break;
            }
            /* the other control characters: \u00XX */
            bad = esc ? util_buf_append(b, esc, 2) : u_escape_write(b, c);
            i++;
        }
        if (bad) return -1;
        run = i;
    }
    if (len > run && util_buf_append(b, s + run, len - run) != 0) return -1;
    return util_buf_append(b, "\"", 1);
}

/* Appends v as jansson's dump of a real (jsonp_dtostr, precision 17, "C" decimal point): its
 * "%.17g" from util_double_g17 (printf's bytes without printf). Returns: 0 or -1. */
static int real_write(util_buf *b, double v)
{
    char buf[UTIL_G17_MAX + 3]; /* room for ".0" */
    size_t len = util_double_g17(v, buf);
    if (len == 0) return -1; /* snprintf failed (its fallback): as the check before it did */
    if (memchr(buf, '.', len) == NULL && memchr(buf, 'e', len) == NULL) {
        memcpy(buf + len, ".0", 3);
        len += 2;
    }
    char *e = memchr(buf, 'e', len);
    if (e != NULL) { /* "1e+05" -> "1e5", "1e-05" -> "1e-5" */
        char *start = e + 1, *end = start + 1;
        if (*start == '-') start++;
        while (*end == '0') end++;
        if (end != start) {
            memmove(start, end, len - (size_t)(end - buf) + 1);
            len -= (size_t)(end - start);
        }
    }
    return util_buf_append(b, buf, len);
}

/* Appends v's compact text to b. Returns: 0, or -1 (then b holds a partial text). */
static int value_write(util_buf *b, const json_t *v, int depth, int ensure_ascii)
{
    if (v == NULL || depth > JSON_WRITE_DEPTH_MAX) return -1;
    switch (json_typeof(v)) {
    case JSON_NULL: return util_buf_append(b, "null", 4);
    case JSON_TRUE: return util_buf_append(b, "true", 4);
    case JSON_FALSE: return util_buf_append(b, "false", 5);
    case JSON_INTEGER: {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return n < 0 || (size_t)n >= sizeof buf ? -1 : util_buf_append(b, buf, (size_t)n);
    }
    case JSON_REAL: return real_write(b, json_real_value(v));
    case JSON_STRING: return string_write(b, json_string_value(v), json_string_length(v), ensure_ascii);
    case JSON_ARRAY: {
        if (util_buf_append(b, "[", 1) != 0) return -1;
        size_t n = json_array_size(v);
        for (size_t i = 0; i < n; i++) {
            if (i > 0 && util_buf_append(b, ",", 1) != 0) return -1;
            if (value_write(b, json_array_get(v, i), depth + 1, ensure_ascii) != 0) return -1;
        }
        return util_buf_append(b, "]", 1);
    }
    case JSON_OBJECT: {
        if (util_buf_append(b, "{", 1) != 0) return -1;
        int first = 1;
        for (void *it = json_object_iter((json_t *)v); it != NULL;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!first && util_buf_append(b, ",", 1) != 0) return -1;
            first = 0;
            const char *key = json_object_iter_key(it);
            if (string_write(b, key, json_object_iter_key_len(it), ensure_ascii) != 0 ||
                util_buf_append(b, ":", 1) != 0 ||
                value_write(b, json_object_iter_value(it), depth + 1, ensure_ascii) != 0)
                return -1;
        }
        return util_buf_append(b, "}", 1);
    }
    }
    return -1;
}

char *util_json_text(const json_t *v, int ensure_ascii, size_t *len)
{
    if (v == NULL || (!json_is_object(v) && !json_is_array(v))) return NULL; /* as json_dumps */
    util_buf b = {.data = malloc(4096), .cap = 4096}; /* a /retrieve reply's order of size */
    if (b.data == NULL) return NULL;
    b.data[0] = '\0';
    if (value_write(&b, v, 0, ensure_ascii) != 0) {
        util_buf_free(&b);
        return NULL;
    }
    if (len) *len = b.len;
    return util_buf_steal(&b);
}
