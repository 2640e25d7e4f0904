/* SPDX-License-Identifier: MIT */
/*
 * ingest_zip.c - the safe way into Office Open XML and OpenDocument files, which are zip archives
 * of XML parts. The archive is opened from memory with libzip; an entry is read only after its
 * header passes the limits (entry count, uncompressed size of one part and of all parts read,
 * compression ratio) and the inflated bytes are counted again while reading, because the sizes a
 * zip declares can lie. Encrypted entries and the encrypted/legacy Office container (OLE compound
 * file) are refused with a reason. XML parts are parsed with libxml2 with the network off, no
 * entity substitution and no DTD loading; a part that declares a DOCTYPE at all is refused, since
 * Office parts never carry one and entity tricks (billion laughs, XXE) need one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <zip.h>

#include "ingest_int.h"
#include "ragd/util.h"

struct ingest_zip {
    zip_t *zip;
    zip_source_t *src;
    const char *path; /* borrowed, for messages */
    size_t total_read; /* uncompressed bytes read so far, across parts */
};

ragd_rc ingest_zip_open(const char *path, const char *data, size_t len, ingest_zip **out,
                        ragd_err *err)
{
    static const unsigned char ole[8] = {0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1};
    if (len >= 8 && memcmp(data, ole, 8) == 0)
        return ragd_err_set(err, RAGD_ERR_INVALID,
                            "encrypted (password-protected) or legacy binary file: an OLE "
                            "container, not a zip of XML parts: %s", path);
    if (len < 4 || memcmp(data, "PK", 2) != 0)
        return ragd_err_set(err, RAGD_ERR_INVALID, "not a zip archive (corrupt or truncated): %s",
                            path);
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(data, len, 0, &ze);
    if (src == NULL) {
        zip_error_fini(&ze);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "zip: out of memory");
    }
    zip_t *z = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (z == NULL) {
        ragd_rc rc = ragd_err_set(err, RAGD_ERR_INVALID, "corrupt or truncated zip archive (%s): %s",
                                  zip_error_strerror(&ze), path);
        zip_error_fini(&ze);
        zip_source_free(src);
        return rc;
    }
    zip_error_fini(&ze);
    zip_int64_t n = zip_get_num_entries(z, 0);
    if (n < 0 || n > RAGD_ZIP_MAX_ENTRIES) {
        zip_discard(z);
        return ragd_err_set(err, RAGD_ERR_INVALID, "zip archive with %lld entries refused (at "
                            "most %d): %s", (long long)n, RAGD_ZIP_MAX_ENTRIES, path);
    }
    ingest_zip *zz = calloc(1, sizeof *zz);
    if (zz == NULL) {
        zip_discard(z);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "zip: out of memory");
    }
    zz->zip = z;
    zz->src = src;
    zz->path = path;
    *out = zz;
    return RAGD_OK;
}

void ingest_zip_close(ingest_zip *z)
{
    if (z == NULL) return;
    zip_discard(z->zip); /* read-only: nothing to write; frees the source too */
    free(z);
}

ragd_rc ingest_zip_read(ingest_zip *z, const char *name, char **out, size_t *len, ragd_err *err)
{
    zip_int64_t idx = zip_name_locate(z->zip, name, 0);
    if (idx < 0) return ragd_err_set(err, RAGD_ERR_NOT_FOUND, "no %s in the archive: %s", name,
                                     z->path);
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(z->zip, (zip_uint64_t)idx, 0, &st) != 0)
        return ragd_err_set(err, RAGD_ERR_INVALID, "corrupt zip entry %s: %s", name, z->path);
    if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE)
        return ragd_err_set(err, RAGD_ERR_INVALID, "encrypted zip entry %s (password needed): %s",
                            name, z->path);
    if ((st.valid & ZIP_STAT_SIZE) && (st.size > RAGD_ZIP_MAX_PART ||
                                       st.size > RAGD_ZIP_MAX_TOTAL - z->total_read))
        return ragd_err_set(err, RAGD_ERR_TOO_LARGE, "zip bomb refused: %s inflates to %llu bytes "
                            "(limit %d MiB per part, %d MiB per file): %s", name,
                            (unsigned long long)st.size, RAGD_ZIP_MAX_PART >> 20,
                            RAGD_ZIP_MAX_TOTAL >> 20, z->path);
    if ((st.valid & ZIP_STAT_SIZE) && (st.valid & ZIP_STAT_COMP_SIZE) && st.size > (1u << 20) &&
        st.size / (st.comp_size ? st.comp_size : 1) > RAGD_ZIP_MAX_RATIO)
        return ragd_err_set(err, RAGD_ERR_TOO_LARGE, "zip bomb refused: %s compresses %llu:1 "
                            "(limit %d:1): %s", name,
                            (unsigned long long)(st.size / (st.comp_size ? st.comp_size : 1)),
                            RAGD_ZIP_MAX_RATIO, z->path);
    zip_file_t *f = zip_fopen_index(z->zip, (zip_uint64_t)idx, 0);
    if (f == NULL)
        return ragd_err_set(err, RAGD_ERR_INVALID, "cannot read zip entry %s (%s): %s", name,
                            zip_strerror(z->zip), z->path);
    util_buf b = {0};
    char chunk[16384];
    ragd_rc rc = RAGD_OK;
    for (;;) {
        zip_int64_t got = zip_fread(f, chunk, sizeof chunk);
        if (got < 0) {
            rc = ragd_err_set(err, RAGD_ERR_INVALID, "corrupt zip entry %s (%s): %s", name,
                              zip_file_strerror(f), z->path);
            break;
        }
        if (got == 0) break;
        /* the declared size can lie: count what actually inflates */
        if (b.len + (size_t)got > RAGD_ZIP_MAX_PART ||
            z->total_read + b.len + (size_t)got > RAGD_ZIP_MAX_TOTAL) {
            rc = ragd_err_set(err, RAGD_ERR_TOO_LARGE, "zip bomb refused: %s inflates past the "
                              "limit (%d MiB per part, %d MiB per file): %s", name,
                              RAGD_ZIP_MAX_PART >> 20, RAGD_ZIP_MAX_TOTAL >> 20, z->path);
            break;
        }
        if (util_buf_append(&b, chunk, (size_t)got) != 0) {
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "zip: out of memory");
            break;
        }
    }
    zip_fclose(f);
    if (rc != RAGD_OK) {
        util_buf_free(&b);
        return rc;
    }
    z->total_read += b.len;
    *len = b.len;
    *out = util_buf_steal(&b);
    if (*out == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "zip: out of memory");
    return RAGD_OK;
}

/* Returns: 1 when "<!DOCTYPE" occurs anywhere in the XML text. The whole text is scanned, not
 * only the prolog: a scanner of the prolog can be fooled by comments, and outside comments and
 * CDATA the sequence cannot occur in well-formed content (text escapes "<"), so the only cost is
 * refusing a part that quotes a DOCTYPE inside a comment. */
static int has_doctype(const char *data, size_t len)
{
    for (size_t i = 0; i + 9 <= len; i++)
        if (data[i] == '<' && data[i + 1] == '!' && strncasecmp(data + i + 2, "DOCTYPE", 7) == 0)
            return 1;
    return 0;
}

ragd_rc ingest_zip_xml(ingest_zip *z, const char *name, xmlDoc **out, ragd_err *err)
{
    char *data = NULL;
    size_t len = 0;
    ragd_rc rc = ingest_zip_read(z, name, &data, &len, err);
    if (rc != RAGD_OK) return rc;
    rc = ingest_xml_parse(z->path, name, data, len, out, err);
    free(data);
    return rc;
}

ragd_rc ingest_xml_parse(const char *path, const char *name, const char *data, size_t len,
                         xmlDoc **out, ragd_err *err)
{
    if (has_doctype(data, len))
        return ragd_err_set(err, RAGD_ERR_INVALID, "XML part %s declares a DOCTYPE (entity "
                            "expansion and external entities are refused): %s", name, path);
    if (len > (size_t)0x7fffffff)
        return ragd_err_set(err, RAGD_ERR_TOO_LARGE, "XML part %s too large: %s", name, path);
    /* no XML_PARSE_NOENT (entities stay unexpanded), no DTDLOAD/DTDATTR, no network, no huge */
    xmlDoc *doc = xmlReadMemory(data, (int)len, name, NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                                    XML_PARSE_NOCDATA | XML_PARSE_NOBLANKS);
    if (doc != NULL && (doc->intSubset != NULL || doc->extSubset != NULL)) {
        xmlFreeDoc(doc); /* cannot happen after the scan above; kept as the invariant */
        return ragd_err_set(err, RAGD_ERR_INVALID, "XML part %s declares a DOCTYPE: %s", name,
                            path);
    }
    if (doc == NULL || xmlDocGetRootElement(doc) == NULL) {
        xmlFreeDoc(doc);
        return ragd_err_set(err, RAGD_ERR_INVALID, "XML part %s is not well-formed: %s", name,
                            path);
    }
    *out = doc;
    return RAGD_OK;
}

int ingest_xml_is(const xmlNode *n, const char *ns_suffix, const char *local)
{
    if (n == NULL || n->type != XML_ELEMENT_NODE || strcmp((const char *)n->name, local) != 0)
        return 0;
    if (ns_suffix == NULL) return 1;
    if (n->ns == NULL || n->ns->href == NULL) return 0;
    const char *href = (const char *)n->ns->href;
    size_t hl = strlen(href), sl = strlen(ns_suffix);
    return hl >= sl && strcmp(href + hl - sl, ns_suffix) == 0;
}

char *ingest_xml_attr(const xmlNode *n, const char *local)
{
    for (const xmlAttr *a = n->properties; a != NULL; a = a->next)
        if (strcmp((const char *)a->name, local) == 0) {
            xmlChar *v = xmlNodeGetContent((const xmlNode *)a);
            if (v == NULL) return NULL;
            char *copy = strdup((const char *)v);
            xmlFree(v);
            return copy;
        }
    return NULL;
}

char *ingest_xml_core_title(ingest_zip *z, const char *name)
{
    xmlDoc *doc = NULL;
    ragd_err ignored = {0};
    if (ingest_zip_xml(z, name, &doc, &ignored) != RAGD_OK) return NULL;
    char *title = NULL;
    /* depth-first over the small properties part: the first dc:title with text */
    xmlNode *stack[64];
    size_t top = 0;
    stack[top++] = xmlDocGetRootElement(doc);
    while (top > 0 && title == NULL) {
        xmlNode *n = stack[--top];
        for (; n != NULL && title == NULL; n = n->next) {
            if (ingest_xml_is(n, "/elements/1.1/", "title")) {
                xmlChar *v = xmlNodeGetContent(n);
                if (v != NULL && v[0] != '\0') title = strdup((const char *)v);
                xmlFree(v);
            } else if (n->type == XML_ELEMENT_NODE && n->children && top < 64) {
                stack[top++] = n->children;
            }
        }
    }
    xmlFreeDoc(doc);
    if (title != NULL) {
        /* one line of whitespace-collapsed text */
        size_t w = 0;
        int space = 1;
        for (size_t r = 0; title[r]; r++) {
            char c = title[r];
            if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
                if (!space) title[w++] = ' ';
                space = 1;
            } else {
                title[w++] = c;
                space = 0;
            }
        }
        while (w > 0 && title[w - 1] == ' ') w--;
        title[w] = '\0';
        if (w == 0) {
            free(title);
            title = NULL;
        }
    }
    return title;
}
