/* SPDX-License-Identifier: MIT */
/*
 * ingest_html.c - HTML to chunkable text. A small tolerant scanner, not a DOM: tags are dropped,
 * <script>, <style>, <noscript>, <template> and <svg> content is dropped with them, comments and
 * declarations vanish, character references are decoded (numeric ones and the common named ones),
 * runs of whitespace collapse to one space outside <pre>. Block elements become paragraph breaks
 * and <h1>..<h6> become markdown headings ("## Title"), so the markdown chunker cuts sections at
 * them; <li> becomes a "- " item and <br> a line break. The title is the <title> text, else the
 * first <h1>, else the file name.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ingest_int.h"
#include "ragd/ingest.h"
#include "ragd/util.h"

typedef struct html_out {
    util_buf text;
    util_buf title;  /* <title> text */
    util_buf h1;     /* first <h1> text */
    int in_title, in_h1, h1_done;
    int pre;         /* inside <pre> */
    int space;       /* a space is pending before the next text */
    int breaks;      /* newlines pending before the next text (max 2) */
    int oom;
} html_out;

static const struct {
    const char *name;
    const char *utf8;
} named_entities[] = {
    {"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"}, {"nbsp", " "},
    {"copy", "\xC2\xA9"}, {"reg", "\xC2\xAE"}, {"trade", "\xE2\x84\xA2"},
    {"mdash", "\xE2\x80\x94"}, {"ndash", "\xE2\x80\x93"}, {"hellip", "\xE2\x80\xA6"},
    {"lsquo", "\xE2\x80\x98"}, {"rsquo", "\xE2\x80\x99"}, {"ldquo", "\xE2\x80\x9C"},
    {"rdquo", "\xE2\x80\x9D"}, {"laquo", "\xC2\xAB"}, {"raquo", "\xC2\xBB"},
    {"euro", "\xE2\x82\xAC"}, {"pound", "\xC2\xA3"}, {"yen", "\xC2\xA5"}, {"cent", "\xC2\xA2"},
    {"sect", "\xC2\xA7"}, {"deg", "\xC2\xB0"}, {"middot", "\xC2\xB7"}, {"bull", "\xE2\x80\xA2"},
    {"times", "\xC3\x97"}, {"divide", "\xC3\xB7"}, {"eacute", "\xC3\xA9"},
    {"egrave", "\xC3\xA8"}, {"agrave", "\xC3\xA0"}, {"aacute", "\xC3\xA1"},
    {"ccedil", "\xC3\xA7"}, {"uuml", "\xC3\xBC"}, {"ouml", "\xC3\xB6"}, {"auml", "\xC3\xA4"},
    {"szlig", "\xC3\x9F"}, {"ntilde", "\xC3\xB1"}, {"shy", ""}, {"zwnj", ""}, {"zwj", ""},
};

/* Writes code point cp as UTF-8 into out (4 bytes room). Returns: the length. Invalid code points
 * (surrogates, NUL, > U+10FFFF) become U+FFFD. */
static size_t utf8_encode(unsigned long cp, char *out)
{
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Appends s[0..n) to the captured title/h1 buffers when inside them. */
static void capture(html_out *o, const char *s, size_t n)
{
    if (o->in_title && util_buf_append(&o->title, s, n) != 0) o->oom = 1;
    if (o->in_h1 && !o->h1_done && util_buf_append(&o->h1, s, n) != 0) o->oom = 1;
}

/* Emits visible text s[0..n) (already decoded; whitespace not yet collapsed). */
static void emit(html_out *o, const char *s, size_t n)
{
    if (o->in_title) {
        capture(o, s, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ws = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
        if (ws && !o->pre) {
            o->space = 1;
            continue;
        }
        if (o->text.len > 0 && o->breaks > 0) {
            if (util_buf_append(&o->text, "\n\n", (size_t)o->breaks) != 0) o->oom = 1;
        } else if (o->space && o->text.len > 0 && o->text.data[o->text.len - 1] != '\n' &&
                   o->text.data[o->text.len - 1] != ' ') {
            if (util_buf_append(&o->text, " ", 1) != 0) o->oom = 1;
            capture(o, " ", 1);
        }
        o->breaks = 0;
        o->space = 0;
        if (util_buf_append(&o->text, &c, 1) != 0) o->oom = 1;
        capture(o, &c, 1);
    }
}

/* Emits raw markup (a heading marker or list bullet) at the start of a fresh block. */
static void emit_marker(html_out *o, const char *marker)
{
    if (o->text.len > 0 && o->breaks > 0 &&
        util_buf_append(&o->text, "\n\n", (size_t)o->breaks) != 0)
        o->oom = 1;
    o->breaks = 0;
    o->space = 0;
    if (util_buf_puts(&o->text, marker) != 0) o->oom = 1;
}

static void block_break(html_out *o, int lines)
{
    if (lines > o->breaks) o->breaks = lines;
    o->space = 0;
}

/* Decodes the character reference at d[i] ('&'). Returns: bytes consumed (1 when it is not a
 * reference: the '&' is then literal); the decoded text in out/outn. */
static size_t entity_decode(const char *d, size_t len, size_t i, char *out, size_t *outn)
{
    size_t j = i + 1;
    if (j < len && d[j] == '#') {
        j++;
        int hex = j < len && (d[j] == 'x' || d[j] == 'X');
        if (hex) j++;
        unsigned long cp = 0;
        size_t digits = 0;
        while (j < len && digits < 8 && (hex ? isxdigit((unsigned char)d[j])
                                             : isdigit((unsigned char)d[j]))) {
            cp = cp * (hex ? 16 : 10) +
                 (unsigned long)(isdigit((unsigned char)d[j]) ? d[j] - '0'
                                                              : (tolower((unsigned char)d[j]) - 'a' + 10));
            j++;
            digits++;
        }
        if (digits == 0) goto literal;
        if (j < len && d[j] == ';') j++;
        *outn = utf8_encode(cp, out);
        return j - i;
    }
    while (j < len && j - i <= 10 && isalnum((unsigned char)d[j])) j++;
    if (j < len && d[j] == ';') {
        for (size_t k = 0; k < sizeof named_entities / sizeof named_entities[0]; k++) {
            size_t nl = strlen(named_entities[k].name);
            if (nl == j - i - 1 && memcmp(d + i + 1, named_entities[k].name, nl) == 0) {
                *outn = strlen(named_entities[k].utf8);
                memcpy(out, named_entities[k].utf8, *outn);
                return j + 1 - i;
            }
        }
    }
literal:
    out[0] = '&';
    *outn = 1;
    return 1;
}

static int name_is(const char *name, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcasecmp(name, list[i]) == 0) return 1;
    return 0;
}

/* Finds the end of a raw-text element's content ("</script"), case-insensitive.
 * Returns: offset of the '<' of the closing tag, or len. */
static size_t raw_end(const char *d, size_t len, size_t i, const char *name)
{
    size_t nl = strlen(name);
    for (; i + 2 + nl <= len; i++)
        if (d[i] == '<' && d[i + 1] == '/' && strncasecmp(d + i + 2, name, nl) == 0) return i;
    return len;
}

static const char *const blocks[] = {
    "p", "div", "section", "article", "header", "footer", "nav", "aside", "main", "ul", "ol",
    "table", "tr", "blockquote", "dl", "dt", "dd", "figure", "figcaption", "form", "address",
    "hr", "body", "html", "fieldset", "details", "summary", "caption", "thead", "tbody", NULL};
static const char *const dropped[] = {"script", "style", "noscript", "template", "svg", NULL};

ragd_rc ingest_html_extract(const char *path, const char *data, size_t len, ingest_doc *out,
                            ragd_err *err)
{
    html_out o = {0};
    size_t i = 0;
    while (i < len && !o.oom) {
        char c = data[i];
        if (c == '&') {
            char dec[8];
            size_t n = 0;
            i += entity_decode(data, len, i, dec, &n);
            emit(&o, dec, n);
            continue;
        }
        if (c != '<') {
            size_t j = i;
            while (j < len && data[j] != '<' && data[j] != '&') j++;
            emit(&o, data + i, j - i);
            i = j;
            continue;
        }
        /* markup */
        if (i + 4 <= len && memcmp(data + i, "<!--", 4) == 0) {
            const char *end = memmem(data + i + 4, len - i - 4, "-->", 3);
            i = end ? (size_t)(end - data) + 3 : len;
            continue;
        }
        if (i + 1 < len && (data[i + 1] == '!' || data[i + 1] == '?')) {
            const char *end = memchr(data + i, '>', len - i);
            i = end ? (size_t)(end - data) + 1 : len;
            continue;
        }
        size_t j = i + 1;
        int closing = j < len && data[j] == '/';
        if (closing) j++;
        size_t ns = j;
        while (j < len && (isalnum((unsigned char)data[j]) || data[j] == '-')) j++;
        if (j == ns) { /* a lone '<' is text */
            emit(&o, "<", 1);
            i++;
            continue;
        }
        char name[16];
        size_t nl = j - ns < sizeof name - 1 ? j - ns : sizeof name - 1;
        memcpy(name, data + ns, nl);
        name[nl] = '\0';
        /* skip attributes, honouring quotes (a '>' inside a quoted value does not end the tag) */
        char quote = 0;
        while (j < len && (quote || data[j] != '>')) {
            if (quote && data[j] == quote) quote = 0;
            else if (!quote && (data[j] == '"' || data[j] == '\'')) quote = data[j];
            j++;
        }
        i = j < len ? j + 1 : len;
        if (!closing && name_is(name, dropped)) {
            size_t e = raw_end(data, len, i, name);
            const char *gt = e < len ? memchr(data + e, '>', len - e) : NULL;
            i = gt ? (size_t)(gt - data) + 1 : len;
            continue;
        }
        if (strcasecmp(name, "title") == 0) {
            o.in_title = !closing;
            continue;
        }
        if (strlen(name) == 2 && tolower((unsigned char)name[0]) == 'h' && name[1] >= '1' &&
            name[1] <= '6') {
            block_break(&o, 2);
            if (!closing) {
                char marker[8] = "###### ";
                emit_marker(&o, marker + (6 - (name[1] - '0')));
                if (name[1] == '1' && !o.h1_done) o.in_h1 = 1;
            } else if (o.in_h1) {
                o.in_h1 = 0;
                o.h1_done = o.h1.len > 0;
            }
            continue;
        }
        if (strcasecmp(name, "pre") == 0) {
            block_break(&o, 2);
            o.pre = !closing;
            continue;
        }
        if (strcasecmp(name, "br") == 0) {
            block_break(&o, 1);
            continue;
        }
        if (strcasecmp(name, "li") == 0) {
            block_break(&o, 1);
            if (!closing) emit_marker(&o, "- ");
            continue;
        }
        if (strcasecmp(name, "td") == 0 || strcasecmp(name, "th") == 0) {
            o.space = 1;
            continue;
        }
        if (name_is(name, blocks)) block_break(&o, 2);
        /* inline elements (a, b, span, em, ...) leave no trace */
    }
    ragd_rc rc = RAGD_OK;
    char *title = NULL;
    if (!o.oom) {
        util_buf *src = o.title.len > 0 ? &o.title : o.h1.len > 0 ? &o.h1 : NULL;
        if (src) {
            /* collapse whitespace in the title */
            util_buf t = {0};
            int sp = 0;
            for (size_t k = 0; k < src->len; k++) {
                char ch = src->data[k];
                if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
                    sp = t.len > 0;
                    continue;
                }
                if (sp && util_buf_append(&t, " ", 1) != 0) o.oom = 1;
                sp = 0;
                if (util_buf_append(&t, &ch, 1) != 0) o.oom = 1;
            }
            title = t.len > 0 ? util_buf_steal(&t) : NULL;
            util_buf_free(&t);
        }
        if (title == NULL) title = ingest_path_title(path);
    }
    if (o.oom || title == NULL) {
        free(title);
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "extract HTML: out of memory");
    } else {
        rc = ingest_doc_fill(out, o.text.data ? o.text.data : "", o.text.len, title,
                             "{\"format\":\"html\"}", 1, err);
    }
    util_buf_free(&o.text);
    util_buf_free(&o.title);
    util_buf_free(&o.h1);
    return rc;
}
