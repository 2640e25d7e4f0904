/* SPDX-License-Identifier: MIT */
/*
 * ingest_rst.c - reStructuredText to chunkable text. Section titles (a title line underlined, or
 * over- and underlined, with one repeated punctuation character at least as long as the title)
 * become markdown headings whose level follows the order in which each adornment style first
 * appears, as in docutils; the adornment lines are dropped, so the markdown chunker cuts sections
 * at them. Everything else is kept as it is. The title is the first section title, else the file
 * name.
 */
#include <stdlib.h>
#include <string.h>

#include "ingest_int.h"
#include "ragd/ingest.h"
#include "ragd/util.h"

#define RST_STYLES_MAX 6

typedef struct line {
    size_t a, b; /* [a, b) without the newline */
    size_t next; /* offset of the next line */
} line;

static const char adornment_chars[] = "=-`:'\"~^_*+#<>.";

/* Returns: the adornment character if d[l] is a run of one punctuation character (trailing
 * blanks allowed) at least 2 long, else 0; *width its length. */
static char adornment(const char *d, line l, size_t *width)
{
    size_t b = l.b;
    while (b > l.a && (d[b - 1] == ' ' || d[b - 1] == '\t' || d[b - 1] == '\r')) b--;
    if (b - l.a < 2 || strchr(adornment_chars, d[l.a]) == NULL || d[l.a] == '\0') return 0;
    for (size_t i = l.a; i < b; i++)
        if (d[i] != d[l.a]) return 0;
    *width = b - l.a;
    return d[l.a];
}

/* Returns: the number of code points in d[a..b) with trailing blanks trimmed, and trims *b. */
static size_t text_width(const char *d, size_t a, size_t *b)
{
    while (*b > a && (d[*b - 1] == ' ' || d[*b - 1] == '\t' || d[*b - 1] == '\r')) (*b)--;
    size_t n = 0;
    for (size_t i = a; i < *b; i++) n += ((unsigned char)d[i] & 0xC0) != 0x80;
    return n;
}

static int blank(const char *d, line l)
{
    for (size_t i = l.a; i < l.b; i++)
        if (d[i] != ' ' && d[i] != '\t' && d[i] != '\r') return 0;
    return 1;
}

static line line_at(const char *d, size_t len, size_t p)
{
    line l = {p, p, len};
    while (l.b < len && d[l.b] != '\n') l.b++;
    l.next = l.b < len ? l.b + 1 : len;
    return l;
}

ragd_rc ingest_rst_extract(const char *path, const char *data, size_t len, ingest_doc *out,
                           ragd_err *err)
{
    util_buf b = {0};
    char styles[RST_STYLES_MAX][2]; /* (char, overlined) in order of first appearance */
    size_t nstyles = 0;
    char *title = NULL;
    int oom = 0;
    size_t p = 0;
    while (p < len && !oom) {
        line l0 = line_at(data, len, p);
        line l1 = line_at(data, len, l0.next);
        line l2 = line_at(data, len, l1.next);
        size_t w0 = 0, w2 = 0, w1 = 0;
        char c0 = adornment(data, l0, &w0);
        char over = 0, under = 0;
        line text = l0;
        size_t after = 0;
        /* overline + title + underline */
        if (c0 && l0.next < len && l1.next <= len && !blank(data, l1) &&
            adornment(data, l2, &w2) == c0 && l1.b > l1.a) {
            size_t tb = l1.b, ta = l1.a;
            while (ta < tb && (data[ta] == ' ' || data[ta] == '\t')) ta++;
            size_t tw = text_width(data, ta, &tb);
            if (tw > 0 && w0 >= tw && w2 >= tw && !adornment(data, l1, &w1)) {
                over = c0;
                text = (line){ta, tb, 0};
                after = l2.next;
            }
        }
        /* title + underline */
        if (!over && !c0 && !blank(data, l0) && l0.next < len && data[l0.a] != ' ' &&
            data[l0.a] != '\t') {
            char c1 = adornment(data, l1, &w1);
            size_t tb = l0.b;
            size_t tw = text_width(data, l0.a, &tb);
            if (c1 && tw > 0 && w1 >= tw) {
                under = c1;
                text = (line){l0.a, tb, 0};
                after = l1.next;
            }
        }
        if (over || under) {
            char ch = over ? over : under;
            size_t level = 0;
            while (level < nstyles && !(styles[level][0] == ch && styles[level][1] == (over != 0)))
                level++;
            if (level == nstyles && nstyles < RST_STYLES_MAX) {
                styles[nstyles][0] = ch;
                styles[nstyles][1] = over != 0;
                nstyles++;
            }
            if (level >= RST_STYLES_MAX) level = RST_STYLES_MAX - 1;
            /* a blank line before the heading (none at the very start), then "## Title" */
            while (b.len > 0 && !oom && !(b.len >= 2 && b.data[b.len - 1] == '\n' &&
                                          b.data[b.len - 2] == '\n'))
                oom |= util_buf_append(&b, "\n", 1) != 0;
            oom |= util_buf_append(&b, "######", level + 1) != 0;
            oom |= util_buf_append(&b, " ", 1) != 0;
            oom |= util_buf_append(&b, data + text.a, text.b - text.a) != 0;
            oom |= util_buf_append(&b, "\n", 1) != 0;
            if (title == NULL && !(title = util_strndup(data + text.a, text.b - text.a))) oom = 1;
            p = after;
            continue;
        }
        oom |= util_buf_append(&b, data + l0.a, l0.next - l0.a) != 0;
        p = l0.next;
    }
    ragd_rc rc;
    if (!oom && title == NULL) title = ingest_path_title(path);
    if (oom || title == NULL) {
        free(title);
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "extract rst: out of memory");
    } else {
        rc = ingest_doc_fill(out, b.data ? b.data : "", b.len, title,
                             "{\"format\":\"rst\"}", 1, err);
    }
    util_buf_free(&b);
    return rc;
}
