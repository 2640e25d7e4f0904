/* SPDX-License-Identifier: MIT */
/*
 * ingest_extract.c - turns a file's raw bytes into the text the chunker sees, plus a title, tags
 * and metadata. One table maps file extensions to extractor functions (PDF, HTML, rst, Office
 * and spreadsheets live in their own files: ingest_pdf.c, ingest_html.c, ingest_rst.c,
 * ingest_office.c, ingest_sheet.c). Every extractor first rejects binary data (NUL bytes) and invalid UTF-8,
 * and strips a UTF-8 byte order mark. Markdown YAML front matter is parsed with a deliberately
 * small subset of YAML (key: scalar, tags as a flow or block list) and removed from the text;
 * line endings are kept as they are so offsets match the file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "ragd/ingest.h"
#include "ingest_int.h"
#include "ragd/util.h"

typedef ragd_rc (*extract_fn)(const char *path, const char *data, size_t len, ingest_doc *out,
                              ragd_err *err);

static ragd_rc extract_markdown(const char *path, const char *data, size_t len, ingest_doc *out,
                                ragd_err *err);
static ragd_rc extract_text(const char *path, const char *data, size_t len, ingest_doc *out,
                            ragd_err *err);

static const struct extractor {
    const char *extensions[4]; /* lowercase, with the dot; NULL-terminated */
    extract_fn run;
    int binary; /* takes raw bytes (PDF): no NUL / UTF-8 checks before it runs */
} extractors[] = {
    {{".md", ".markdown", NULL}, extract_markdown, 0},
    {{".txt", NULL}, extract_text, 0},
    {{".pdf", NULL}, ingest_pdf_extract, 1},
    {{".html", ".htm", ".xhtml", NULL}, ingest_html_extract, 0},
    {{".rst", ".rest", NULL}, ingest_rst_extract, 0},
    {{".docx", NULL}, ingest_docx_extract, 1},
    {{".odt", NULL}, ingest_odt_extract, 1},
    {{".xlsx", NULL}, ingest_xlsx_extract, 1},
    {{".ods", NULL}, ingest_ods_extract, 1},
    {{".csv", ".tsv", NULL}, ingest_csv_extract, 0},
};

static const struct extractor text_extractor = {{NULL}, extract_text, 0};

/* Returns: the extractor for path's extension, or NULL. */
static const struct extractor *extractor_find(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    if (dot == NULL || dot == base) return NULL;
    for (size_t i = 0; i < sizeof extractors / sizeof extractors[0]; i++)
        for (size_t k = 0; extractors[i].extensions[k] != NULL; k++)
            if (strcasecmp(dot, extractors[i].extensions[k]) == 0) return &extractors[i];
    return NULL;
}

int ingest_extract_supported(const char *path)
{
    return path != NULL && extractor_find(path) != NULL;
}

/* Returns: new copy of the file name of path without directory and extension. NULL on OOM. */
static char *title_from_path(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = (dot && dot != base) ? (size_t)(dot - base) : strlen(base);
    return util_strndup(base, n);
}

static int is_blank_char(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Trims spaces, tabs and \r from both ends of [*a, *b). */
static void trim(const char *d, size_t *a, size_t *b)
{
    while (*a < *b && is_blank_char(d[*a])) (*a)++;
    while (*b > *a && is_blank_char(d[*b - 1])) (*b)--;
}

/* Returns: new string of the YAML scalar d[a..b) with matching outer quotes removed. */
static char *scalar_dup(const char *d, size_t a, size_t b)
{
    trim(d, &a, &b);
    if (b - a >= 2 && (d[a] == '"' || d[a] == '\'') && d[b - 1] == d[a]) {
        a++;
        b--;
    } else {
        /* an unquoted scalar ends at a " #" comment */
        for (size_t i = a; i + 1 < b; i++)
            if ((d[i] == ' ' || d[i] == '\t') && d[i + 1] == '#') {
                b = i;
                trim(d, &a, &b);
                break;
            }
    }
    return util_strndup(d + a, b - a);
}

/* Appends the scalar d[a..b) to the JSON array when non-empty. Returns: 0 or -1 on OOM. */
static int tag_add(json_t *tags, const char *d, size_t a, size_t b)
{
    char *t = scalar_dup(d, a, b);
    if (t == NULL) return -1;
    int rc = 0;
    if (t[0] != '\0') rc = json_array_append_new(tags, json_string(t));
    free(t);
    return rc;
}

/* Appends "a, b" or "[a, b]" items to tags. Returns: 0 or -1. */
static int tags_flow(json_t *tags, const char *d, size_t a, size_t b)
{
    trim(d, &a, &b);
    if (a < b && d[a] == '[') {
        a++;
        if (b > a && d[b - 1] == ']') b--;
    }
    size_t s = a;
    for (size_t i = a; i <= b; i++) {
        if (i == b || d[i] == ',') {
            if (tag_add(tags, d, s, i) != 0) return -1;
            s = i + 1;
        }
    }
    return 0;
}

/* Returns: 1 if line d[a..b) (without its newline) is exactly marker plus trailing blanks. */
static int line_is(const char *d, size_t a, size_t b, const char *marker)
{
    size_t n = strlen(marker);
    if (b - a < n || memcmp(d + a, marker, n) != 0) return 0;
    for (size_t i = a + n; i < b; i++)
        if (!is_blank_char(d[i])) return 0;
    return 1;
}

typedef struct front {
    size_t body;    /* offset of the text after the front matter; 0 when there is none */
    char *title;    /* new, or NULL */
    json_t *tags;   /* new array */
    json_t *meta;   /* new object */
} front;

/* Parses YAML front matter at the start of d. Returns: 0, or -1 on OOM (f then holds partial
 * results that the caller frees). */
static int front_parse(const char *d, size_t len, front *f)
{
    f->body = 0;
    size_t e = 0;
    while (e < len && d[e] != '\n') e++;
    if (e >= len || !line_is(d, 0, e, "---")) return 0;
    /* find the closing line first: without one this is no front matter */
    size_t p = e + 1, close = SIZE_MAX, close_next = len;
    while (p < len) {
        size_t le = p;
        while (le < len && d[le] != '\n') le++;
        if (line_is(d, p, le, "---") || line_is(d, p, le, "...")) {
            close = p;
            close_next = le < len ? le + 1 : len;
            break;
        }
        p = le + 1;
    }
    if (close == SIZE_MAX) return 0;
    int in_tags = 0;
    for (p = e + 1; p < close;) {
        size_t a = p, b = p;
        while (b < close && d[b] != '\n') b++;
        p = b + 1;
        size_t ta = a, tb = b;
        trim(d, &ta, &tb);
        if (ta == tb || d[ta] == '#') continue;
        if (in_tags && d[ta] == '-' && (ta + 1 == tb || d[ta + 1] == ' ' || d[ta + 1] == '\t')) {
            if (tag_add(f->tags, d, ta + 1, tb) != 0) return -1;
            continue;
        }
        in_tags = 0;
        if (a < b && (d[a] == ' ' || d[a] == '\t')) continue; /* nested values: not supported */
        size_t k = a;
        while (k < b && d[k] != ':') k++;
        if (k == b || (k + 1 < b && d[k + 1] != ' ' && d[k + 1] != '\t' && d[k + 1] != '\r'))
            continue;
        size_t ka = a, kb = k;
        trim(d, &ka, &kb);
        if (ka == kb) continue;
        size_t va = k + 1, vb = b;
        trim(d, &va, &vb);
        if (kb - ka == 4 && strncasecmp(d + ka, "tags", 4) == 0) {
            if (va == vb)
                in_tags = 1;
            else if (tags_flow(f->tags, d, va, vb) != 0)
                return -1;
            continue;
        }
        if (va == vb) continue; /* a block value (list or map): not supported */
        char *value = scalar_dup(d, va, vb);
        if (value == NULL) return -1;
        if (kb - ka == 5 && strncasecmp(d + ka, "title", 5) == 0) {
            free(f->title);
            f->title = value;
            continue;
        }
        char *key = util_strndup(d + ka, kb - ka);
        int rc = key ? json_object_set_new(f->meta, key, json_string(value)) : -1;
        free(key);
        free(value);
        if (rc != 0) return -1;
    }
    f->body = close_next;
    return 0;
}

/* Returns: new text of the first H1 (ATX "# x" or setext "x\n===") outside fenced code, "" when
 * there is none, NULL on OOM. */
static char *first_h1(const char *d, size_t len)
{
    int in_fence = 0;
    char fch = 0;
    size_t prev_a = 0, prev_b = 0;
    int prev_text = 0;
    for (size_t p = 0; p < len;) {
        size_t a = p, b = p;
        while (b < len && d[b] != '\n') b++;
        p = b + 1;
        size_t ta = a, tb = b;
        trim(d, &ta, &tb);
        if (ta - a <= 3 && tb - ta >= 3 && (d[ta] == '`' || d[ta] == '~') &&
            d[ta + 1] == d[ta] && d[ta + 2] == d[ta]) {
            if (!in_fence) {
                in_fence = 1;
                fch = d[ta];
            } else if (d[ta] == fch) {
                in_fence = 0;
            }
            prev_text = 0;
            continue;
        }
        if (in_fence) continue;
        if (ta - a <= 3 && ta < tb && d[ta] == '#' && (ta + 1 == tb || d[ta + 1] == ' ' ||
                                                        d[ta + 1] == '\t')) {
            size_t ha = ta + 1, hb = tb;
            while (hb > ha && d[hb - 1] == '#') hb--;
            if (hb > ha && d[hb - 1] != ' ' && d[hb - 1] != '\t') hb = tb; /* "# C#" */
            trim(d, &ha, &hb);
            if (ha < hb) return util_strndup(d + ha, hb - ha);
        }
        if (prev_text && ta < tb && ta - a <= 3 && d[ta] == '=') {
            size_t i = ta;
            while (i < tb && d[i] == '=') i++;
            if (i == tb) return util_strndup(d + prev_a, prev_b - prev_a);
        }
        prev_text = ta < tb && ta - a <= 3 && d[ta] != '#';
        prev_a = ta;
        prev_b = tb;
    }
    return util_strndup("", 0);
}

/* Fills out from the parts; on failure frees everything it was given. */
static ragd_rc doc_finish(ingest_doc *out, const char *text, size_t len, char *title,
                          json_t *tags, json_t *meta, int markdown, ragd_err *err)
{
    char *t = util_strndup(text, len);
    char *tj = tags ? json_dumps(tags, JSON_COMPACT) : strdup("[]");
    char *mj = meta ? json_dumps(meta, JSON_COMPACT | JSON_PRESERVE_ORDER) : strdup("{}");
    json_decref(tags);
    json_decref(meta);
    if (t == NULL || title == NULL || tj == NULL || mj == NULL) {
        free(t);
        free(title);
        free(tj);
        free(mj);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "extract: out of memory");
    }
    out->text = t;
    out->len = len;
    out->title = title;
    out->tags_json = tj;
    out->metadata_json = mj;
    out->markdown = markdown;
    return RAGD_OK;
}

static ragd_rc extract_markdown(const char *path, const char *data, size_t len, ingest_doc *out,
                                ragd_err *err)
{
    front f = {0, NULL, json_array(), json_object()};
    if (f.tags == NULL || f.meta == NULL || front_parse(data, len, &f) != 0) {
        free(f.title);
        json_decref(f.tags);
        json_decref(f.meta);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "extract: out of memory");
    }
    const char *text = data + f.body;
    size_t tlen = len - f.body;
    char *title = f.title;
    if (title == NULL || title[0] == '\0') {
        free(title);
        title = first_h1(text, tlen);
        if (title != NULL && title[0] == '\0') {
            free(title);
            title = title_from_path(path);
        }
    }
    return doc_finish(out, text, tlen, title, f.tags, f.meta, 1, err);
}

static ragd_rc extract_text(const char *path, const char *data, size_t len, ingest_doc *out,
                            ragd_err *err)
{
    return doc_finish(out, data, len, title_from_path(path), NULL, NULL, 0, err);
}

int ingest_extract_accepted(const char *path, const ingest_extract_opts *opts)
{
    return path != NULL && (extractor_find(path) != NULL || (opts && opts->unknown_as_text));
}

/* Returns: a new copy of data[0..len) with every invalid UTF-8 sequence replaced by U+FFFD, and
 * *repaired the number replaced; NULL on OOM. */
static char *utf8_repair(const char *data, size_t len, size_t *repaired)
{
    util_buf b = {0};
    *repaired = 0;
    size_t i = 0;
    while (i < len) {
        size_t good = util_utf8_first_invalid(data + i, len - i);
        if (util_buf_append(&b, data + i, good) != 0) goto oom;
        i += good;
        if (i >= len) break;
        if (util_buf_append(&b, "\xEF\xBF\xBD", 3) != 0) goto oom;
        (*repaired)++;
        i++;
        /* skip the continuation bytes of the broken sequence: one U+FFFD per sequence */
        while (i < len && ((unsigned char)data[i] & 0xC0) == 0x80) i++;
    }
    return util_buf_steal(&b);
oom:
    util_buf_free(&b);
    return NULL;
}

ragd_rc ingest_extract_file(const char *path, const char *data, size_t len,
                            const ingest_extract_opts *opts, ingest_doc *out, ragd_err *err)
{
    if (path == NULL || out == NULL || (data == NULL && len > 0))
        return ragd_err_set(err, RAGD_ERR_INVALID, "extract: missing argument");
    const struct extractor *ex = extractor_find(path);
    if (ex == NULL && opts && opts->unknown_as_text) ex = &text_extractor;
    if (ex == NULL)
        return ragd_err_set(err, RAGD_ERR_UNSUPPORTED, "unsupported file type: %s", path);
    if (ex->run == ingest_pdf_extract) /* the one extractor with options of its own: OCR */
        return ingest_pdf_extract_ocr(path, data ? data : "", len, opts ? opts->ocr : NULL, out,
                                      err);
    if (ex->binary) return ex->run(path, data ? data : "", len, out, err);
    if (len > 0 && memchr(data, '\0', len) != NULL)
        return ragd_err_set(err, RAGD_ERR_INVALID, "binary file (NUL bytes): %s", path);
    size_t bad = util_utf8_first_invalid(data, len);
    char *fixed = NULL;
    size_t repaired = 0;
    if (bad < len && !(opts && opts->repair_utf8))
        return ragd_err_set(err, RAGD_ERR_INVALID, "invalid UTF-8 at byte %zu: %s", bad, path);
    if (bad < len) {
        fixed = utf8_repair(data, len, &repaired);
        if (fixed == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "extract: out of memory");
        data = fixed;
        len = strlen(fixed);
    }
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) {
        data += 3;
        len -= 3;
    }
    ragd_rc rc = ex->run(path, data ? data : "", len, out, err);
    if (rc == RAGD_OK && repaired > 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "invalid UTF-8 repaired: %zu sequences replaced by U+FFFD, "
                 "the first at byte %zu", repaired, bad);
        out->warning = strdup(msg);
        if (out->warning == NULL) {
            ingest_doc_free(out);
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "extract: out of memory");
        }
    }
    free(fixed);
    return rc;
}

ragd_rc ingest_extract_run(const char *path, const char *data, size_t len, ingest_doc *out,
                           ragd_err *err)
{
    return ingest_extract_file(path, data, len, NULL, out, err);
}

void ingest_doc_free(ingest_doc *doc)
{
    if (doc == NULL) return;
    free(doc->text);
    free(doc->title);
    free(doc->tags_json);
    free(doc->metadata_json);
    free(doc->page_starts);
    free(doc->warning);
    free(doc->ocr_pages);
    memset(doc, 0, sizeof *doc);
}

char *ingest_path_title(const char *path)
{
    return title_from_path(path);
}

ragd_rc ingest_doc_fill(ingest_doc *out, const char *text, size_t len, char *title,
                        const char *metadata_json, int markdown, ragd_err *err)
{
    json_t *meta = NULL;
    if (metadata_json != NULL && (meta = json_loads(metadata_json, 0, NULL)) == NULL) {
        free(title);
        return ragd_err_set(err, RAGD_ERR_INTERNAL, "extract: bad metadata JSON");
    }
    return doc_finish(out, text, len, title, NULL, meta, markdown, err);
}
