/* SPDX-License-Identifier: MIT */
/*
 * ingest_office.c - word-processor documents: Office Open XML (.docx, word/document.xml) and
 * OpenDocument text (.odt, content.xml), read through ingest_zip.c (size, ratio and entity limits)
 * and turned into markdown so the chunker cuts at their headings: a paragraph whose style is a
 * heading ("heading N" / outline level in .docx, text:h in .odt) becomes "#"*N, list items become
 * "- " lines indented by level, tables become markdown table rows (first row, then a separator),
 * and everything else a paragraph. Deleted tracked changes, field codes, notes and comments are
 * left out. The title is the document properties' dc:title, else the first heading, else the file
 * name. docs/FORMATS.md describes what is kept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <libxml/tree.h>

#include "ingest_int.h"
#include "ragd/ingest.h"
#include "ragd/util.h"

#define OFFICE_MAX_DEPTH 64  /* element nesting followed; deeper content is dropped */
#define OFFICE_MAX_STYLES 512

/* The document being written: markdown text plus the first heading seen. */
typedef struct office_out {
    util_buf text;
    char *first_heading; /* new, or NULL */
    int in_list;         /* the last block was a list item (no blank line after it yet) */
    int oom;
} office_out;

/* ---- shared writers -------------------------------------------------------------------------- */

/* Appends s with runs of whitespace collapsed to one space (paragraph text is one line). */
static void put_inline(util_buf *b, const char *s, int *oom)
{
    for (; *s && !*oom; s++) {
        char c = *s;
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
        if (c == ' ' && (b->len == 0 || b->data[b->len - 1] == ' ')) continue;
        if (util_buf_append(b, &c, 1) != 0) *oom = 1;
    }
}

/* Trims b's trailing spaces. */
static void rtrim(util_buf *b)
{
    while (b->len > 0 && b->data[b->len - 1] == ' ') b->data[--b->len] = '\0';
}

/* Writes one block: heading (level 1..6), list item (list_level >= 0) or paragraph, followed by a
 * blank line. Text that would read as markdown structure is escaped. */
static void block_emit(office_out *o, const char *text, int heading, int list_level)
{
    while (*text == ' ') text++;
    if (*text == '\0' || o->oom) return;
    util_buf *b = &o->text;
    int rc = 0;
    int item = list_level >= 0 && heading == 0;
    if (o->in_list && !item) rc |= util_buf_puts(b, "\n");
    o->in_list = item;
    if (heading > 0) {
        if (heading > 6) heading = 6;
        rc |= util_buf_printf(b, "%.*s ", heading, "######");
        if (o->first_heading == NULL && (o->first_heading = strdup(text)) == NULL) o->oom = 1;
    } else if (list_level >= 0) {
        for (int i = 0; i < list_level && i < 8; i++) rc |= util_buf_puts(b, "  ");
        rc |= util_buf_puts(b, "- ");
    } else if (*text == '#' || *text == '`' || *text == '~' || *text == '>' || *text == '=') {
        rc |= util_buf_puts(b, "\\");
    }
    rc |= util_buf_puts(b, text);
    rc |= util_buf_puts(b, item ? "\n" : "\n\n");
    if (rc != 0) o->oom = 1;
}

/* Writes one table row "| a | b |" (cells as collected text, pipes escaped); after the first row
 * a separator row, so the table reads as markdown. */
static void row_emit(office_out *o, char **cells, size_t n, int first)
{
    if (n == 0 || o->oom) return;
    if (o->in_list && util_buf_puts(&o->text, "\n") != 0) o->oom = 1;
    o->in_list = 0;
    int any = 0;
    for (size_t i = 0; i < n; i++) any |= cells[i] && cells[i][0];
    if (!any) return;
    util_buf *b = &o->text;
    int rc = util_buf_puts(b, "|");
    for (size_t i = 0; i < n; i++) {
        rc |= util_buf_puts(b, " ");
        for (const char *p = cells[i] ? cells[i] : ""; *p; p++)
            rc |= *p == '|' ? util_buf_puts(b, "\\|") : util_buf_append(b, p, 1);
        rc |= util_buf_puts(b, " |");
    }
    rc |= util_buf_puts(b, "\n");
    if (first) {
        rc |= util_buf_puts(b, "|");
        for (size_t i = 0; i < n; i++) rc |= util_buf_puts(b, " --- |");
        rc |= util_buf_puts(b, "\n");
    }
    if (rc != 0) o->oom = 1;
}

static void cells_free(char **cells, size_t n)
{
    for (size_t i = 0; i < n; i++) free(cells[i]);
    free(cells);
}

/* ---- .docx ------------------------------------------------------------------------------------ */

typedef struct docx_style {
    char *id;
    int level; /* heading level 1..9, 0 for other paragraph styles */
} docx_style;

typedef struct docx_ctx {
    office_out *o;
    docx_style styles[OFFICE_MAX_STYLES];
    size_t style_count;
} docx_ctx;

static int is_w(const xmlNode *n, const char *local)
{
    if (n == NULL || n->type != XML_ELEMENT_NODE || strcmp((const char *)n->name, local) != 0)
        return 0;
    return n->ns && n->ns->href && strstr((const char *)n->ns->href, "wordprocessingml") != NULL;
}

/* Returns: the heading level a style name means ("heading 2" -> 2, "Title" -> 1), else 0. */
static int heading_level_of_name(const char *name)
{
    if (name == NULL) return 0;
    if (strcasecmp(name, "title") == 0) return 1;
    if (strncasecmp(name, "heading", 7) == 0) {
        const char *p = name + 7;
        if (*p == ' ') p++;
        if (*p >= '1' && *p <= '9' && p[1] == '\0') return *p - '0';
    }
    return 0;
}

/* Reads word/styles.xml (optional) into ctx->styles: which style ids are headings. */
static void docx_styles_load(docx_ctx *c, ingest_zip *z)
{
    xmlDoc *doc = NULL;
    ragd_err ignored = {0};
    if (ingest_zip_xml(z, "word/styles.xml", &doc, &ignored) != RAGD_OK) return;
    for (xmlNode *s = xmlDocGetRootElement(doc)->children; s; s = s->next) {
        if (!is_w(s, "style") || c->style_count >= OFFICE_MAX_STYLES) continue;
        char *id = ingest_xml_attr(s, "styleId");
        if (id == NULL) continue;
        int level = 0;
        for (xmlNode *k = s->children; k; k = k->next) {
            if (is_w(k, "name") && level == 0) {
                char *name = ingest_xml_attr(k, "val");
                level = heading_level_of_name(name);
                free(name);
            } else if (is_w(k, "pPr")) {
                for (xmlNode *p = k->children; p; p = p->next)
                    if (is_w(p, "outlineLvl") && level == 0) {
                        char *v = ingest_xml_attr(p, "val");
                        int lv = v ? atoi(v) : 9;
                        if (lv >= 0 && lv < 9) level = lv + 1;
                        free(v);
                    }
            }
        }
        c->styles[c->style_count].id = id;
        c->styles[c->style_count++].level = level;
    }
    xmlFreeDoc(doc);
}

/* Returns: the heading level of a paragraph style id (styles.xml first, then the built-in ids). */
static int docx_style_level(const docx_ctx *c, const char *id)
{
    for (size_t i = 0; i < c->style_count; i++)
        if (strcmp(c->styles[i].id, id) == 0) return c->styles[i].level;
    return heading_level_of_name(id);
}

/* Collects the visible text of a paragraph's runs into b. */
static void docx_text(const xmlNode *n, util_buf *b, int depth, int *oom)
{
    if (depth > OFFICE_MAX_DEPTH) return;
    for (; n && !*oom; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) continue;
        if (is_w(n, "t")) {
            xmlChar *v = xmlNodeGetContent(n);
            if (v) put_inline(b, (const char *)v, oom);
            xmlFree(v);
        } else if (is_w(n, "tab") || is_w(n, "br") || is_w(n, "cr")) {
            put_inline(b, " ", oom);
        } else if (is_w(n, "del") || is_w(n, "delText") || is_w(n, "instrText") ||
                   is_w(n, "pPr") || is_w(n, "rPr") || is_w(n, "footnoteReference") ||
                   is_w(n, "commentReference")) {
            continue;
        } else {
            docx_text(n->children, b, depth + 1, oom);
        }
    }
}

/* Returns: heading level (>0) and *list_level (>=0 for list items) of paragraph p. */
static int docx_para_kind(const docx_ctx *c, const xmlNode *p, int *list_level)
{
    int level = 0;
    *list_level = -1;
    for (xmlNode *k = p->children; k; k = k->next) {
        if (!is_w(k, "pPr")) continue;
        for (xmlNode *q = k->children; q; q = q->next) {
            if (is_w(q, "pStyle")) {
                char *v = ingest_xml_attr(q, "val");
                if (v && level == 0) level = docx_style_level(c, v);
                free(v);
            } else if (is_w(q, "outlineLvl") && level == 0) {
                char *v = ingest_xml_attr(q, "val");
                int lv = v ? atoi(v) : 9;
                if (lv >= 0 && lv < 9) level = lv + 1;
                free(v);
            } else if (is_w(q, "numPr")) {
                *list_level = 0;
                for (xmlNode *r = q->children; r; r = r->next)
                    if (is_w(r, "ilvl")) {
                        char *v = ingest_xml_attr(r, "val");
                        *list_level = v ? atoi(v) : 0;
                        if (*list_level < 0 || *list_level > 8) *list_level = 0;
                        free(v);
                    }
            }
        }
    }
    if (level > 0) *list_level = -1;
    return level;
}

static void docx_blocks(docx_ctx *c, const xmlNode *n, int depth);

/* Writes a w:tbl as markdown rows; each cell's paragraphs joined with spaces. */
static void docx_table(docx_ctx *c, const xmlNode *tbl, int depth)
{
    int first = 1;
    for (const xmlNode *tr = tbl->children; tr && !c->o->oom; tr = tr->next) {
        if (!is_w(tr, "tr")) continue;
        size_t n = 0;
        for (const xmlNode *tc = tr->children; tc; tc = tc->next) n += is_w(tc, "tc");
        char **cells = calloc(n ? n : 1, sizeof *cells);
        if (cells == NULL) {
            c->o->oom = 1;
            return;
        }
        size_t i = 0;
        for (const xmlNode *tc = tr->children; tc && i < n; tc = tc->next) {
            if (!is_w(tc, "tc")) continue;
            util_buf b = {0};
            docx_text(tc->children, &b, depth + 1, &c->o->oom);
            rtrim(&b);
            cells[i++] = util_buf_steal(&b);
        }
        row_emit(c->o, cells, n, first);
        first = 0;
        cells_free(cells, n);
    }
    if (!first && util_buf_puts(&c->o->text, "\n") != 0) c->o->oom = 1;
}

/* Writes the block-level children of n (w:body, w:sdtContent, ...). */
static void docx_blocks(docx_ctx *c, const xmlNode *n, int depth)
{
    if (depth > OFFICE_MAX_DEPTH) return;
    for (; n && !c->o->oom; n = n->next) {
        if (is_w(n, "p")) {
            int list_level;
            int level = docx_para_kind(c, n, &list_level);
            util_buf b = {0};
            docx_text(n->children, &b, depth + 1, &c->o->oom);
            rtrim(&b);
            if (b.data) block_emit(c->o, b.data, level, list_level);
            util_buf_free(&b);
        } else if (is_w(n, "tbl")) {
            docx_table(c, n, depth + 1);
        } else if (n->type == XML_ELEMENT_NODE && !is_w(n, "sectPr")) {
            docx_blocks(c, n->children, depth + 1); /* sdt, customXml, ins, ... */
        }
    }
}

static ragd_rc docx_extract(const char *path, ingest_zip *z, office_out *o, char **title,
                            ragd_err *err)
{
    xmlDoc *doc = NULL;
    ragd_rc rc = ingest_zip_xml(z, "word/document.xml", &doc, err);
    if (rc == RAGD_ERR_NOT_FOUND)
        return ragd_err_set(err, RAGD_ERR_INVALID, "not a Word document (no word/document.xml): "
                            "%s", path);
    if (rc != RAGD_OK) return rc;
    docx_ctx *c = calloc(1, sizeof *c);
    if (c == NULL) {
        xmlFreeDoc(doc);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "docx: out of memory");
    }
    c->o = o;
    docx_styles_load(c, z);
    for (xmlNode *n = xmlDocGetRootElement(doc)->children; n; n = n->next)
        if (is_w(n, "body")) docx_blocks(c, n->children, 1);
    for (size_t i = 0; i < c->style_count; i++) free(c->styles[i].id);
    free(c);
    xmlFreeDoc(doc);
    *title = ingest_xml_core_title(z, "docProps/core.xml");
    return RAGD_OK;
}

/* ---- .odt ------------------------------------------------------------------------------------- */

#define NS_TEXT ":text:1.0"
#define NS_TABLE ":table:1.0"
#define NS_OFFICE ":office:1.0"

/* Collects the visible text of an ODF paragraph or heading into b. */
static void odt_text(const xmlNode *n, util_buf *b, int depth, int *oom)
{
    if (depth > OFFICE_MAX_DEPTH) return;
    for (; n && !*oom; n = n->next) {
        if (n->type == XML_TEXT_NODE) {
            put_inline(b, (const char *)n->content, oom);
        } else if (ingest_xml_is(n, NS_TEXT, "s")) {
            put_inline(b, " ", oom);
        } else if (ingest_xml_is(n, NS_TEXT, "tab") || ingest_xml_is(n, NS_TEXT, "line-break")) {
            put_inline(b, " ", oom);
        } else if (ingest_xml_is(n, NS_TEXT, "note") || ingest_xml_is(n, NS_OFFICE, "annotation") ||
                   ingest_xml_is(n, NS_TEXT, "tracked-changes")) {
            continue;
        } else if (n->type == XML_ELEMENT_NODE) {
            odt_text(n->children, b, depth + 1, oom);
        }
    }
}

static void odt_blocks(office_out *o, const xmlNode *n, int list_level, int depth);

static void odt_table(office_out *o, const xmlNode *n, int depth, int *first)
{
    for (; n && !o->oom; n = n->next) {
        if (ingest_xml_is(n, NS_TABLE, "table-header-rows") ||
            ingest_xml_is(n, NS_TABLE, "table-rows") || ingest_xml_is(n, NS_TABLE, "table-row-group")) {
            odt_table(o, n->children, depth + 1, first);
            continue;
        }
        if (!ingest_xml_is(n, NS_TABLE, "table-row")) continue;
        size_t count = 0;
        for (const xmlNode *tc = n->children; tc; tc = tc->next)
            count += ingest_xml_is(tc, NS_TABLE, "table-cell");
        char **cells = calloc(count ? count : 1, sizeof *cells);
        if (cells == NULL) {
            o->oom = 1;
            return;
        }
        size_t i = 0;
        for (const xmlNode *tc = n->children; tc && i < count; tc = tc->next) {
            if (!ingest_xml_is(tc, NS_TABLE, "table-cell")) continue;
            util_buf b = {0};
            for (const xmlNode *p = tc->children; p; p = p->next) {
                if (b.len > 0) put_inline(&b, " ", &o->oom);
                odt_text(p->children, &b, depth + 1, &o->oom);
            }
            rtrim(&b);
            cells[i++] = util_buf_steal(&b);
        }
        /* trailing empty cells (the editor's padding) are dropped */
        while (count > 0 && (cells[count - 1] == NULL || cells[count - 1][0] == '\0')) {
            free(cells[count - 1]);
            count--;
        }
        int before = (int)o->text.len;
        row_emit(o, cells, count, *first);
        if ((int)o->text.len != before) *first = 0;
        cells_free(cells, count);
    }
}

/* Writes the block-level children of n (office:text, text:section, list items ...). */
static void odt_blocks(office_out *o, const xmlNode *n, int list_level, int depth)
{
    if (depth > OFFICE_MAX_DEPTH) return;
    for (; n && !o->oom; n = n->next) {
        int heading = 0;
        if (ingest_xml_is(n, NS_TEXT, "h")) {
            char *lv = ingest_xml_attr(n, "outline-level");
            heading = lv ? atoi(lv) : 1;
            if (heading < 1 || heading > 9) heading = 1;
            free(lv);
        }
        if (heading > 0 || ingest_xml_is(n, NS_TEXT, "p")) {
            util_buf b = {0};
            odt_text(n->children, &b, depth + 1, &o->oom);
            rtrim(&b);
            if (b.data) block_emit(o, b.data, heading, heading ? -1 : list_level);
            util_buf_free(&b);
        } else if (ingest_xml_is(n, NS_TEXT, "list")) {
            odt_blocks(o, n->children, list_level + 1, depth + 1);
        } else if (ingest_xml_is(n, NS_TABLE, "table")) {
            int first = 1;
            odt_table(o, n->children, depth + 1, &first);
            if (util_buf_puts(&o->text, "\n") != 0) o->oom = 1;
        } else if (ingest_xml_is(n, NS_TEXT, "tracked-changes") ||
                   ingest_xml_is(n, NS_OFFICE, "forms") ||
                   ingest_xml_is(n, NS_TEXT, "sequence-decls") ||
                   ingest_xml_is(n, NS_TEXT, "variable-decls")) {
            continue;
        } else if (n->type == XML_ELEMENT_NODE) {
            odt_blocks(o, n->children, list_level, depth + 1); /* section, list-item, ... */
        }
    }
}

static ragd_rc odt_extract(const char *path, ingest_zip *z, office_out *o, char **title,
                           ragd_err *err)
{
    char *mime = NULL;
    size_t mlen = 0;
    ragd_err ignored = {0};
    if (ingest_zip_read(z, "mimetype", &mime, &mlen, &ignored) == RAGD_OK &&
        strstr(mime, "opendocument.text") == NULL) {
        ragd_rc rc = ragd_err_set(err, RAGD_ERR_INVALID, "not an OpenDocument text (mimetype "
                                  "%.60s): %s", mime, path);
        free(mime);
        return rc;
    }
    free(mime);
    xmlDoc *doc = NULL;
    ragd_rc rc = ingest_zip_xml(z, "content.xml", &doc, err);
    if (rc == RAGD_ERR_NOT_FOUND)
        return ragd_err_set(err, RAGD_ERR_INVALID, "not an OpenDocument file (no content.xml): %s",
                            path);
    if (rc != RAGD_OK) return rc;
    for (xmlNode *n = xmlDocGetRootElement(doc)->children; n; n = n->next) {
        if (!ingest_xml_is(n, NS_OFFICE, "body")) continue;
        for (xmlNode *t = n->children; t; t = t->next)
            if (ingest_xml_is(t, NS_OFFICE, "text")) odt_blocks(o, t->children, -1, 1);
    }
    xmlFreeDoc(doc);
    *title = ingest_xml_core_title(z, "meta.xml");
    return RAGD_OK;
}

/* ---- entry points ----------------------------------------------------------------------------- */

typedef ragd_rc (*office_fn)(const char *path, ingest_zip *z, office_out *o, char **title,
                             ragd_err *err);

static ragd_rc office_run(const char *path, const char *data, size_t len, const char *format,
                          office_fn fn, ingest_doc *out, ragd_err *err)
{
    ingest_zip *z = NULL;
    ragd_rc rc = ingest_zip_open(path, data, len, &z, err);
    if (rc != RAGD_OK) return rc;
    office_out o = {0};
    char *title = NULL;
    rc = fn(path, z, &o, &title, err);
    ingest_zip_close(z);
    if (rc == RAGD_OK && o.oom) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "%s: out of memory", format);
    if (rc == RAGD_OK && (o.text.len == 0 || !util_utf8_valid(o.text.data, o.text.len)))
        rc = ragd_err_set(err, RAGD_ERR_INVALID, o.text.len == 0 ? "%s document has no text: %s"
                                                                   : "%s text is not UTF-8: %s",
                          format, path);
    if (rc == RAGD_OK && title == NULL && o.first_heading != NULL) {
        title = o.first_heading;
        o.first_heading = NULL;
    }
    if (rc == RAGD_OK && title == NULL && (title = ingest_path_title(path)) == NULL)
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "%s: out of memory", format);
    char meta[64];
    snprintf(meta, sizeof meta, "{\"format\":\"%s\"}", format);
    if (rc == RAGD_OK) {
        rc = ingest_doc_fill(out, o.text.data, o.text.len, title, meta, 1, err);
        title = NULL; /* stolen */
    }
    free(title);
    free(o.first_heading);
    util_buf_free(&o.text);
    return rc;
}

ragd_rc ingest_docx_extract(const char *path, const char *data, size_t len, ingest_doc *out,
                            ragd_err *err)
{
    return office_run(path, data, len, "docx", docx_extract, out, err);
}

ragd_rc ingest_odt_extract(const char *path, const char *data, size_t len, ingest_doc *out,
                           ragd_err *err)
{
    return office_run(path, data, len, "odt", odt_extract, out, err);
}
