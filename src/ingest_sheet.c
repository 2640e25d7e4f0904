/* SPDX-License-Identifier: MIT */
/*
 * ingest_sheet.c - spreadsheets: .xlsx (Office Open XML, through ingest_zip.c), .ods
 * (OpenDocument) and .csv/.tsv (RFC 4180). Each sheet becomes one markdown section ("# Sheet"),
 * so the chunker never mixes two sheets in one chunk; its first non-empty row is the header, and
 * every later row becomes one paragraph that names each value by its column,
 * "Plan: B; Price: 30 EUR; Seats: 5", so a row is never cut from its column names and a question
 * about "plan B" finds the row with them. Empty rows are skipped; empty header cells are named by
 * the column letter. docs/FORMATS.md describes the layout and the limits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/tree.h>

#include "ingest_int.h"
#include "ragd/ingest.h"
#include "ragd/util.h"

#define SHEET_MAX_COLS 1024      /* columns read per row; later ones are dropped */
#define SHEET_MAX_SHEETS 256
#define SHEET_MAX_DEPTH 32

/* Builds the text of a workbook one sheet and one row at a time. */
typedef struct sheet_w {
    util_buf text;
    char *header[SHEET_MAX_COLS]; /* new strings of the current sheet's header row */
    size_t header_n;
    int have_header;
    size_t sheets;   /* sheets with at least one row */
    size_t rows;     /* data rows written, all sheets */
    int oom;
} sheet_w;

/* Appends s with whitespace runs collapsed (a cell is written on one line). */
static void put_inline(util_buf *b, const char *s, int *oom)
{
    int space = 1;
    for (; *s && !*oom; s++) {
        char c = *s;
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
        if (c == ' ' && space) continue;
        space = c == ' ';
        if (util_buf_append(b, &c, 1) != 0) *oom = 1;
    }
    while (b->len > 0 && b->data[b->len - 1] == ' ') b->data[--b->len] = '\0';
}

/* Returns: a new copy of s collapsed to one line (free()), "" when s is NULL; NULL on OOM. */
static char *cell_clean(const char *s)
{
    util_buf b = {0};
    int oom = 0;
    put_inline(&b, s ? s : "", &oom);
    if (oom) {
        util_buf_free(&b);
        return NULL;
    }
    return util_buf_steal(&b);
}

static void column_letters(size_t col, char out[8])
{
    char tmp[8];
    size_t n = 0;
    col++;
    while (col > 0 && n < 7) {
        tmp[n++] = (char)('A' + (col - 1) % 26);
        col = (col - 1) / 26;
    }
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    out[n] = '\0';
}

static void header_clear(sheet_w *w)
{
    for (size_t i = 0; i < w->header_n; i++) free(w->header[i]);
    w->header_n = 0;
    w->have_header = 0;
}

/* Starts a sheet: its name becomes a level-1 heading. */
static void sheet_begin(sheet_w *w, const char *name)
{
    header_clear(w);
    if (w->text.len > 0 && util_buf_puts(&w->text, "\n") != 0) w->oom = 1;
    if (util_buf_puts(&w->text, "# ") != 0) w->oom = 1;
    put_inline(&w->text, name && name[0] ? name : "Sheet", &w->oom);
    if (util_buf_puts(&w->text, "\n\n") != 0) w->oom = 1;
    w->sheets++;
}

/* Adds one row (cells[i] is column i's text, NULL or "" when empty; n columns). The first
 * non-empty row of a sheet is its header; later rows are written as "Name: value; ...". */
static void sheet_row(sheet_w *w, char **cells, size_t n)
{
    if (w->oom) return;
    size_t last = n;
    while (last > 0 && (cells[last - 1] == NULL || cells[last - 1][0] == '\0')) last--;
    if (last == 0) return;
    if (!w->have_header) {
        w->have_header = 1;
        for (size_t i = 0; i < last && i < SHEET_MAX_COLS; i++) {
            w->header[i] = cell_clean(cells[i]);
            if (w->header[i] == NULL) w->oom = 1;
            w->header_n = i + 1;
        }
        /* the header is written once too, so the column names are searchable on their own */
        util_buf *b = &w->text;
        int rc = util_buf_puts(b, "Columns: ");
        for (size_t i = 0; i < w->header_n; i++) {
            char letters[8];
            column_letters(i, letters);
            rc |= util_buf_puts(b, i ? "; " : "");
            rc |= util_buf_puts(b, w->header[i] && w->header[i][0] ? w->header[i] : letters);
        }
        rc |= util_buf_puts(b, "\n\n");
        if (rc != 0) w->oom = 1;
        return;
    }
    util_buf *b = &w->text;
    int rc = 0, first = 1;
    for (size_t i = 0; i < last && !w->oom; i++) {
        if (cells[i] == NULL || cells[i][0] == '\0') continue;
        char letters[8];
        column_letters(i, letters);
        const char *name = i < w->header_n && w->header[i] && w->header[i][0] ? w->header[i]
                                                                              : letters;
        rc |= util_buf_puts(b, first ? "" : "; ");
        rc |= util_buf_puts(b, name);
        rc |= util_buf_puts(b, ": ");
        put_inline(b, cells[i], &w->oom);
        first = 0;
    }
    rc |= util_buf_puts(b, "\n\n");
    if (rc != 0) w->oom = 1;
    w->rows++;
}

static ragd_rc sheet_finish(sheet_w *w, const char *path, const char *format, char *title,
                            ingest_doc *out, ragd_err *err)
{
    header_clear(w);
    ragd_rc rc = RAGD_OK;
    if (w->oom) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "%s: out of memory", format);
    else if (w->text.len == 0 || w->rows + w->sheets == 0)
        rc = ragd_err_set(err, RAGD_ERR_INVALID, "%s workbook has no cells: %s", format, path);
    else if (!util_utf8_valid(w->text.data, w->text.len))
        rc = ragd_err_set(err, RAGD_ERR_INVALID, "%s text is not UTF-8: %s", format, path);
    if (rc == RAGD_OK && title == NULL && (title = ingest_path_title(path)) == NULL)
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "%s: out of memory", format);
    char meta[96];
    snprintf(meta, sizeof meta, "{\"format\":\"%s\",\"sheets\":%zu,\"rows\":%zu}", format,
             w->sheets, w->rows);
    if (rc == RAGD_OK) {
        rc = ingest_doc_fill(out, w->text.data, w->text.len, title, meta, 1, err);
        title = NULL;
    }
    free(title);
    util_buf_free(&w->text);
    return rc;
}

/* A row under construction: cells by column index. */
typedef struct row_buf {
    char *cells[SHEET_MAX_COLS];
    size_t n;
} row_buf;

static void row_reset(row_buf *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->cells[i]);
        r->cells[i] = NULL;
    }
    r->n = 0;
}

/* Sets column col (steals value). Returns: 0, or -1 when col is past the limit (value freed). */
static int row_set(row_buf *r, size_t col, char *value)
{
    if (col >= SHEET_MAX_COLS) {
        free(value);
        return -1;
    }
    free(r->cells[col]);
    r->cells[col] = value;
    if (col + 1 > r->n) r->n = col + 1;
    return 0;
}

/* ---- .xlsx ------------------------------------------------------------------------------------ */

static int is_s(const xmlNode *n, const char *local)
{
    if (n == NULL || n->type != XML_ELEMENT_NODE || strcmp((const char *)n->name, local) != 0)
        return 0;
    return n->ns && n->ns->href && (strstr((const char *)n->ns->href, "spreadsheetml") != NULL);
}

/* Appends the text of every t under n that is not phonetic (rPh). */
static void xlsx_rich_text(const xmlNode *n, util_buf *b, int depth, int *oom)
{
    if (depth > SHEET_MAX_DEPTH) return;
    for (; n && !*oom; n = n->next) {
        if (is_s(n, "rPh") || is_s(n, "phoneticPr")) continue;
        if (is_s(n, "t")) {
            xmlChar *v = xmlNodeGetContent(n);
            if (v && util_buf_puts(b, (const char *)v) != 0) *oom = 1;
            xmlFree(v);
        } else if (n->type == XML_ELEMENT_NODE) {
            xlsx_rich_text(n->children, b, depth + 1, oom);
        }
    }
}

typedef struct xlsx_strings {
    char **items;
    size_t count;
} xlsx_strings;

static void strings_free(xlsx_strings *s)
{
    for (size_t i = 0; i < s->count; i++) free(s->items[i]);
    free(s->items);
}

static ragd_rc xlsx_strings_load(ingest_zip *z, xlsx_strings *s, ragd_err *err)
{
    xmlDoc *doc = NULL;
    ragd_err local = {0};
    ragd_rc rc = ingest_zip_xml(z, "xl/sharedStrings.xml", &doc, &local);
    if (rc == RAGD_ERR_NOT_FOUND) return RAGD_OK; /* a workbook of numbers only */
    if (rc != RAGD_OK) return ragd_err_set(err, rc, "%s", local.msg);
    size_t n = 0;
    for (xmlNode *si = xmlDocGetRootElement(doc)->children; si; si = si->next) n += is_s(si, "si");
    s->items = calloc(n ? n : 1, sizeof *s->items);
    int oom = s->items == NULL;
    for (xmlNode *si = xmlDocGetRootElement(doc)->children; si && !oom; si = si->next) {
        if (!is_s(si, "si")) continue;
        util_buf b = {0};
        xlsx_rich_text(si->children, &b, 1, &oom);
        s->items[s->count++] = util_buf_steal(&b);
        if (s->items[s->count - 1] == NULL) oom = 1;
    }
    xmlFreeDoc(doc);
    if (oom) return ragd_err_set(err, RAGD_ERR_NOMEM, "xlsx: out of memory");
    return RAGD_OK;
}

/* Returns: the 0-based column of a cell reference "BC12", or -1. */
static long ref_column(const char *ref)
{
    long col = 0;
    size_t i = 0;
    for (; ref[i] >= 'A' && ref[i] <= 'Z' && i < 4; i++) col = col * 26 + (ref[i] - 'A' + 1);
    return i == 0 ? -1 : col - 1;
}

/* Returns: the new text of cell c (free()), NULL for an empty cell; *oom set on OOM. */
static char *xlsx_cell_text(const xmlNode *c, const xlsx_strings *ss, int *oom)
{
    char *type = ingest_xml_attr(c, "t");
    char *value = NULL;
    util_buf b = {0};
    for (const xmlNode *k = c->children; k; k = k->next) {
        if (is_s(k, "v") && value == NULL) {
            xmlChar *v = xmlNodeGetContent(k);
            value = v ? strdup((const char *)v) : NULL;
            if (v && value == NULL) *oom = 1;
            xmlFree(v);
        } else if (is_s(k, "is")) {
            xlsx_rich_text(k->children, &b, 1, oom);
        }
    }
    char *out = NULL;
    if (type && strcmp(type, "inlineStr") == 0) {
        out = util_buf_steal(&b);
    } else if (type && strcmp(type, "s") == 0 && value) {
        char *end = NULL;
        unsigned long idx = strtoul(value, &end, 10);
        if (end != value && *end == '\0' && idx < ss->count) out = strdup(ss->items[idx]);
    } else if (type && strcmp(type, "b") == 0 && value) {
        out = strdup(strcmp(value, "0") == 0 ? "FALSE" : "TRUE");
    } else if (value) {
        out = value; /* numbers, formula strings, errors: as stored */
        value = NULL;
    }
    util_buf_free(&b);
    free(type);
    free(value);
    return out;
}

static void xlsx_sheet(sheet_w *w, const xmlNode *n, const xlsx_strings *ss, int depth)
{
    if (depth > SHEET_MAX_DEPTH) return;
    row_buf *r = calloc(1, sizeof *r);
    if (r == NULL) {
        w->oom = 1;
        return;
    }
    for (; n && !w->oom; n = n->next) {
        if (is_s(n, "sheetData")) {
            for (const xmlNode *row = n->children; row && !w->oom; row = row->next) {
                if (!is_s(row, "row")) continue;
                size_t next_col = 0;
                for (const xmlNode *c = row->children; c && !w->oom; c = c->next) {
                    if (!is_s(c, "c")) continue;
                    char *ref = ingest_xml_attr(c, "r");
                    long col = ref ? ref_column(ref) : -1;
                    free(ref);
                    size_t at = col >= 0 ? (size_t)col : next_col;
                    next_col = at + 1;
                    char *text = xlsx_cell_text(c, ss, &w->oom);
                    if (text) row_set(r, at, text);
                }
                sheet_row(w, r->cells, r->n);
                row_reset(r);
            }
        }
    }
    row_reset(r);
    free(r);
}

/* Returns: new zip entry name (free()) of a workbook relationship target, or NULL. */
static char *xlsx_target_path(const char *target)
{
    if (target[0] == '/') return strdup(target + 1);
    char *p = util_path_join("xl", target);
    return p;
}

static ragd_rc xlsx_extract(const char *path, const char *data, size_t len, ingest_doc *out,
                            ragd_err *err)
{
    ingest_zip *z = NULL;
    ragd_rc rc = ingest_zip_open(path, data, len, &z, err);
    if (rc != RAGD_OK) return rc;
    xmlDoc *wb = NULL, *rels = NULL;
    xlsx_strings ss = {0};
    sheet_w *w = calloc(1, sizeof *w);
    if (w == NULL) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "xlsx: out of memory");
    if (rc == RAGD_OK) rc = ingest_zip_xml(z, "xl/workbook.xml", &wb, err);
    if (rc == RAGD_ERR_NOT_FOUND)
        rc = ragd_err_set(err, RAGD_ERR_INVALID, "not an Excel workbook (no xl/workbook.xml): %s",
                          path);
    if (rc == RAGD_OK) rc = ingest_zip_xml(z, "xl/_rels/workbook.xml.rels", &rels, err);
    if (rc == RAGD_OK) rc = xlsx_strings_load(z, &ss, err);
    size_t sheets_seen = 0;
    for (xmlNode *n = rc == RAGD_OK ? xmlDocGetRootElement(wb)->children : NULL;
         n && rc == RAGD_OK; n = n->next) {
        if (!is_s(n, "sheets")) continue;
        for (xmlNode *s = n->children; s && rc == RAGD_OK; s = s->next) {
            if (!is_s(s, "sheet")) continue;
            if (++sheets_seen > SHEET_MAX_SHEETS) break;
            char *name = ingest_xml_attr(s, "name");
            char *rid = ingest_xml_attr(s, "id"); /* r:id */
            char *target = NULL;
            for (xmlNode *rel = xmlDocGetRootElement(rels)->children; rel && rid && !target;
                 rel = rel->next) {
                if (rel->type != XML_ELEMENT_NODE) continue;
                char *id = ingest_xml_attr(rel, "Id");
                if (id && strcmp(id, rid) == 0) {
                    char *t = ingest_xml_attr(rel, "Target");
                    if (t) target = xlsx_target_path(t);
                    free(t);
                }
                free(id);
            }
            xmlDoc *sheet = NULL;
            ragd_err serr = {0};
            ragd_rc src = target != NULL ? ingest_zip_xml(z, target, &sheet, &serr) : RAGD_OK;
            /* a chart sheet or a dangling relationship has no cells: skip it */
            if (src != RAGD_OK && src != RAGD_ERR_NOT_FOUND) rc = ragd_err_set(err, src, "%s",
                                                                              serr.msg);
            if (rc == RAGD_OK && sheet != NULL) {
                sheet_begin(w, name);
                xlsx_sheet(w, xmlDocGetRootElement(sheet)->children, &ss, 1);
            }
            xmlFreeDoc(sheet);
            free(name);
            free(rid);
            free(target);
        }
    }
    char *title = rc == RAGD_OK ? ingest_xml_core_title(z, "docProps/core.xml") : NULL;
    xmlFreeDoc(wb);
    xmlFreeDoc(rels);
    strings_free(&ss);
    ingest_zip_close(z);
    if (rc == RAGD_OK) {
        rc = sheet_finish(w, path, "xlsx", title, out, err); /* steals title */
        free(w);
        return rc;
    }
    if (w) {
        header_clear(w);
        util_buf_free(&w->text);
        free(w);
    }
    free(title);
    return rc;
}

/* ---- .ods ------------------------------------------------------------------------------------- */

#define NS_TEXT ":text:1.0"
#define NS_TABLE ":table:1.0"
#define NS_OFFICE ":office:1.0"
#define ODS_MAX_REPEAT_COLS 64 /* a non-empty cell repeated more often is written this often */

/* Appends the visible text of an ODF cell paragraph. */
static void ods_text(const xmlNode *n, util_buf *b, int depth, int *oom)
{
    if (depth > SHEET_MAX_DEPTH) return;
    for (; n && !*oom; n = n->next) {
        if (n->type == XML_TEXT_NODE) {
            if (util_buf_puts(b, (const char *)n->content) != 0) *oom = 1;
        } else if (ingest_xml_is(n, NS_TEXT, "s") || ingest_xml_is(n, NS_TEXT, "tab") ||
                   ingest_xml_is(n, NS_TEXT, "line-break")) {
            if (util_buf_puts(b, " ") != 0) *oom = 1;
        } else if (ingest_xml_is(n, NS_OFFICE, "annotation") || ingest_xml_is(n, NS_TEXT, "note")) {
            continue;
        } else if (n->type == XML_ELEMENT_NODE) {
            ods_text(n->children, b, depth + 1, oom);
        }
    }
}

static unsigned long repeat_attr(const xmlNode *n, const char *name)
{
    char *v = ingest_xml_attr(n, name);
    unsigned long r = v ? strtoul(v, NULL, 10) : 1;
    free(v);
    return r < 1 ? 1 : r;
}

static void ods_rows(sheet_w *w, const xmlNode *n, row_buf *r, int depth)
{
    if (depth > SHEET_MAX_DEPTH) return;
    for (; n && !w->oom; n = n->next) {
        if (ingest_xml_is(n, NS_TABLE, "table-header-rows") ||
            ingest_xml_is(n, NS_TABLE, "table-rows") ||
            ingest_xml_is(n, NS_TABLE, "table-row-group")) {
            ods_rows(w, n->children, r, depth + 1);
            continue;
        }
        if (!ingest_xml_is(n, NS_TABLE, "table-row")) continue;
        size_t col = 0;
        for (const xmlNode *c = n->children; c && !w->oom && col < SHEET_MAX_COLS; c = c->next) {
            if (!ingest_xml_is(c, NS_TABLE, "table-cell") &&
                !ingest_xml_is(c, NS_TABLE, "covered-table-cell"))
                continue;
            unsigned long rep = repeat_attr(c, "number-columns-repeated");
            util_buf b = {0};
            for (const xmlNode *p = c->children; p && !w->oom; p = p->next) {
                if (!ingest_xml_is(p, NS_TEXT, "p")) continue;
                if (b.len > 0 && util_buf_puts(&b, " ") != 0) w->oom = 1;
                ods_text(p->children, &b, depth + 1, &w->oom);
            }
            if (b.len == 0) {
                /* empty cells (often repeated thousands of times to the sheet's edge) */
                col = rep >= SHEET_MAX_COLS - col ? SHEET_MAX_COLS : col + rep;
            } else {
                if (rep > ODS_MAX_REPEAT_COLS) rep = ODS_MAX_REPEAT_COLS;
                for (unsigned long k = 0; k < rep && col < SHEET_MAX_COLS && !w->oom; k++) {
                    char *copy = strdup(b.data);
                    if (copy == NULL) w->oom = 1;
                    else row_set(r, col++, copy);
                }
            }
            util_buf_free(&b);
        }
        /* repeated rows are identical: one copy carries their text */
        sheet_row(w, r->cells, r->n);
        row_reset(r);
    }
}

static ragd_rc ods_extract(const char *path, const char *data, size_t len, ingest_doc *out,
                           ragd_err *err)
{
    ingest_zip *z = NULL;
    ragd_rc rc = ingest_zip_open(path, data, len, &z, err);
    if (rc != RAGD_OK) return rc;
    char *mime = NULL;
    size_t mlen = 0;
    ragd_err ignored = {0};
    if (ingest_zip_read(z, "mimetype", &mime, &mlen, &ignored) == RAGD_OK &&
        strstr(mime, "opendocument.spreadsheet") == NULL)
        rc = ragd_err_set(err, RAGD_ERR_INVALID, "not an OpenDocument spreadsheet (mimetype "
                          "%.60s): %s", mime, path);
    free(mime);
    xmlDoc *doc = NULL;
    if (rc == RAGD_OK) rc = ingest_zip_xml(z, "content.xml", &doc, err);
    if (rc == RAGD_ERR_NOT_FOUND)
        rc = ragd_err_set(err, RAGD_ERR_INVALID, "not an OpenDocument file (no content.xml): %s",
                          path);
    sheet_w *w = rc == RAGD_OK ? calloc(1, sizeof *w) : NULL;
    row_buf *r = rc == RAGD_OK ? calloc(1, sizeof *r) : NULL;
    if (rc == RAGD_OK && (w == NULL || r == NULL))
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "ods: out of memory");
    size_t tables = 0;
    for (xmlNode *b = rc == RAGD_OK ? xmlDocGetRootElement(doc)->children : NULL; b; b = b->next) {
        if (!ingest_xml_is(b, NS_OFFICE, "body")) continue;
        for (xmlNode *s = b->children; s; s = s->next) {
            if (!ingest_xml_is(s, NS_OFFICE, "spreadsheet")) continue;
            for (xmlNode *t = s->children; t && !w->oom; t = t->next) {
                if (!ingest_xml_is(t, NS_TABLE, "table") || ++tables > SHEET_MAX_SHEETS) continue;
                char *name = ingest_xml_attr(t, "name");
                sheet_begin(w, name);
                free(name);
                ods_rows(w, t->children, r, 1);
            }
        }
    }
    char *title = rc == RAGD_OK ? ingest_xml_core_title(z, "meta.xml") : NULL;
    xmlFreeDoc(doc);
    ingest_zip_close(z);
    free(r);
    if (rc == RAGD_OK) rc = sheet_finish(w, path, "ods", title, out, err); /* steals title */
    free(w);
    return rc;
}

/* ---- .csv / .tsv ------------------------------------------------------------------------------ */

/* Returns: the delimiter of a CSV: the most frequent of , ; and tab on its first line outside
 * quotes (comma when none). */
static char csv_delimiter(const char *d, size_t len, int tsv)
{
    if (tsv) return '\t';
    size_t counts[3] = {0};
    const char cand[3] = {',', ';', '\t'};
    int quoted = 0;
    for (size_t i = 0; i < len && (quoted || d[i] != '\n'); i++) {
        if (d[i] == '"') quoted = !quoted;
        for (int k = 0; k < 3 && !quoted; k++) counts[k] += d[i] == cand[k];
    }
    int best = 0;
    for (int k = 1; k < 3; k++)
        if (counts[k] > counts[best]) best = k;
    return cand[best];
}

static ragd_rc csv_run(const char *path, const char *data, size_t len, int tsv, ingest_doc *out,
                       ragd_err *err)
{
    sheet_w *w = calloc(1, sizeof *w);
    row_buf *r = calloc(1, sizeof *r);
    if (w == NULL || r == NULL) {
        free(w);
        free(r);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "csv: out of memory");
    }
    char *name = ingest_path_title(path);
    sheet_begin(w, name ? name : "Sheet");
    free(name);
    char delim = csv_delimiter(data, len, tsv);
    util_buf field = {0};
    size_t col = 0, i = 0;
    int quoted = 0, was_quoted = 0;
    ragd_rc rc = RAGD_OK;
    while (i <= len && !w->oom) {
        char c = i < len ? data[i] : '\n';
        if (quoted) {
            if (i == len) {
                rc = ragd_err_set(err, RAGD_ERR_INVALID, "CSV quote not closed (truncated?): %s",
                                  path);
                break;
            }
            if (c == '"' && i + 1 < len && data[i + 1] == '"') {
                if (util_buf_append(&field, "\"", 1) != 0) w->oom = 1;
                i += 2;
                continue;
            }
            if (c == '"') quoted = 0;
            else if (util_buf_append(&field, &c, 1) != 0) w->oom = 1;
            i++;
            continue;
        }
        if (c == '"' && field.len == 0 && !was_quoted) {
            quoted = was_quoted = 1;
            i++;
            continue;
        }
        if (c == delim || c == '\n') {
            size_t flen = field.len;
            if (!was_quoted && flen > 0 && field.data[flen - 1] == '\r') field.data[--field.len] = 0;
            char *v = util_buf_steal(&field);
            if (v == NULL) w->oom = 1;
            else if (v[0] == '\0' || col >= SHEET_MAX_COLS) free(v);
            else row_set(r, col, v);
            col++;
            was_quoted = 0;
            if (c == '\n') {
                sheet_row(w, r->cells, r->n);
                row_reset(r);
                col = 0;
            }
            i++;
            continue;
        }
        if (util_buf_append(&field, &c, 1) != 0) w->oom = 1;
        i++;
    }
    util_buf_free(&field);
    row_reset(r);
    free(r);
    if (rc != RAGD_OK) {
        header_clear(w);
        util_buf_free(&w->text);
        free(w);
        return rc;
    }
    rc = sheet_finish(w, path, tsv ? "tsv" : "csv", NULL, out, err);
    free(w);
    return rc;
}

/* ---- entry points ----------------------------------------------------------------------------- */

ragd_rc ingest_xlsx_extract(const char *path, const char *data, size_t len, ingest_doc *out,
                            ragd_err *err)
{
    return xlsx_extract(path, data, len, out, err);
}

ragd_rc ingest_ods_extract(const char *path, const char *data, size_t len, ingest_doc *out,
                           ragd_err *err)
{
    return ods_extract(path, data, len, out, err);
}

ragd_rc ingest_csv_extract(const char *path, const char *data, size_t len, ingest_doc *out,
                           ragd_err *err)
{
    size_t n = strlen(path);
    int tsv = n >= 4 && strcasecmp(path + n - 4, ".tsv") == 0;
    return csv_run(path, data, len, tsv, out, err);
}
