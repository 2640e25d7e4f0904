/* SPDX-License-Identifier: MIT */
/*
 * ingest_int.h - helpers shared by the ingest module's files (extractors and the table in
 * ingest_extract.c); not part of the public ingest interface.
 */
#ifndef RAGD_INGEST_INT_H
#define RAGD_INGEST_INT_H

#include <stddef.h>

#include "ragd/ingest.h"

/* Returns: new copy of the file name of path without directory and extension (free()), or NULL
 * on OOM. */
char *ingest_path_title(const char *path);

/* Fills out with copies of text[0..len) and title (stolen), tags "[]", metadata_json (copied, or
 * "{}" when NULL), markdown. On failure frees title. Returns: RAGD_OK or RAGD_ERR_NOMEM. */
ragd_rc ingest_doc_fill(ingest_doc *out, const char *text, size_t len, char *title,
                        const char *metadata_json, int markdown, ragd_err *err);

/* ---- OCR of PDF pages (src/ingest_ocr.c) --------------------------------------------------- */
typedef struct _PopplerPage PopplerPage;
typedef struct ingest_ocr ingest_ocr;

/* Returns: new OCR state for one file (free with ingest_ocr_free), NULL on OOM. The engine is
 * loaded on the first page. Not thread-safe: one file, one thread. */
ingest_ocr *ingest_ocr_new(const ingest_ocr_opts *opts);
/* Frees x. x may be NULL. */
void ingest_ocr_free(ingest_ocr *x);
/* Renders page and reads its text. *timed_out = 1 (and *text NULL) when the page took longer
 * than the page timeout. RAGD_ERR_UNSUPPORTED when the language data is missing.
 * Returns: RAGD_OK, *text (new, free()) and *confidence (0..100). */
ragd_rc ingest_ocr_page(ingest_ocr *x, PopplerPage *page, const char *path, char **text,
                        int *confidence, int *timed_out, ragd_err *err);

/* ---- zip archives of XML parts (src/ingest_zip.c): .docx .odt .xlsx .ods ------------------ */
#include <libxml/tree.h>

#define RAGD_ZIP_MAX_ENTRIES 10000        /* more entries than this: refused */
#define RAGD_ZIP_MAX_PART (64 << 20)      /* largest uncompressed part read, bytes */
#define RAGD_ZIP_MAX_TOTAL (128 << 20)    /* largest uncompressed total read from one file */
#define RAGD_ZIP_MAX_RATIO 200            /* parts over 1 MiB compressing better: refused */

typedef struct ingest_zip ingest_zip;

/* Opens the zip archive data[0..len) (borrowed until ingest_zip_close). Encrypted Office files
 * (OLE containers), non-zips and corrupt archives fail with RAGD_ERR_INVALID and the reason.
 * Returns: RAGD_OK and *out (new, free with ingest_zip_close). */
ragd_rc ingest_zip_open(const char *path, const char *data, size_t len, ingest_zip **out,
                        ragd_err *err);
/* Closes z. z may be NULL. */
void ingest_zip_close(ingest_zip *z);
/* Reads the entry name whole, within the size/ratio limits (RAGD_ERR_TOO_LARGE: zip bomb);
 * RAGD_ERR_NOT_FOUND when absent. Returns: RAGD_OK and *out (new, NUL-terminated, free()). */
ragd_rc ingest_zip_read(ingest_zip *z, const char *name, char **out, size_t *len, ragd_err *err);
/* Reads and parses the XML entry name (see ingest_xml_parse).
 * Returns: RAGD_OK and *out (new, free with xmlFreeDoc). */
ragd_rc ingest_zip_xml(ingest_zip *z, const char *name, xmlDoc **out, ragd_err *err);
/* Parses XML safely: no network, no entity substitution, no DTD; a DOCTYPE is refused.
 * Returns: RAGD_OK and *out (new, free with xmlFreeDoc), or RAGD_ERR_INVALID. */
ragd_rc ingest_xml_parse(const char *path, const char *name, const char *data, size_t len,
                         xmlDoc **out, ragd_err *err);
/* Returns: 1 when n is an element named local whose namespace URI ends with ns_suffix (any
 * namespace when ns_suffix is NULL). */
int ingest_xml_is(const xmlNode *n, const char *ns_suffix, const char *local);
/* Returns: new copy (free()) of the attribute local (any namespace) of n, or NULL. */
char *ingest_xml_attr(const xmlNode *n, const char *local);
/* Returns: new (free()) one-line dc:title of the properties part name (docProps/core.xml,
 * meta.xml), or NULL when it has none or cannot be read. */
char *ingest_xml_core_title(ingest_zip *z, const char *name);

#endif
