/* SPDX-License-Identifier: MIT */
/*
 * ingest.h - turning files into chunks: the extractor interface (one per format), the crawler,
 * the markdown-aware chunker with its token estimate, and the ingest pipeline that writes
 * documents, chunks and embeddings to the store.
 */
#ifndef RAGD_INGEST_H
#define RAGD_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "ragd/ragd.h"

/* ---- token estimate (src/ingest_chunk.c) ----------------------------------------------------
 * An approximation of OpenAI's cl100k/o200k BPE token counts without the vocabulary; see
 * docs/CHUNKING.md for the rules and measured error. */
size_t ingest_tokens_count(const char *text, size_t len);

/* ---- chunker (src/ingest_chunk.c) ---------------------------------------------------------- */
typedef struct ingest_chunk_opts {
    int target_tokens; /* aim for chunks of about this size */
    int max_tokens;    /* never exceed (except a single unbreakable token run; see .c) */
    double overlap;    /* fraction of target_tokens carried from the previous chunk of a section */
    int markdown;      /* 1: cut at markdown headings and fences; 0: plain text (paragraphs) */
} ingest_chunk_opts;

typedef struct ingest_chunk {
    size_t start;   /* byte offset of the chunk's first byte in the document text */
    size_t end;     /* byte offset one past the last byte; text is doc[start..end) */
    char *heading;  /* heading path "Refunds > Exceptions", "" when none; owned by the list */
    size_t tokens;  /* ingest_tokens_count() of doc[start..end) */
    int page;       /* 1-based page the chunk is on (paged formats: PDF), 0 when none */
} ingest_chunk;

typedef struct ingest_chunk_list {
    ingest_chunk *items;
    size_t count;
} ingest_chunk_list;

/* Splits text[0..len) into chunks: sections at headings, then paragraphs, then sentences, then
 * words; chunks never cross a section boundary; overlap only between chunks of one section.
 * Whitespace-only documents give zero chunks. Chunk bounds are trimmed of surrounding whitespace.
 * Returns: RAGD_OK and *out (new, free with ingest_chunk_list_free). */
ragd_rc ingest_chunk_split(const char *text, size_t len, const ingest_chunk_opts *opts,
                           ingest_chunk_list *out, ragd_err *err);

/* Frees the list's items and headings and zeroes it. list may be NULL. */
void ingest_chunk_list_free(ingest_chunk_list *list);

/* ---- extractors (src/ingest_extract.c) ------------------------------------------------------
 * One extractor per format behind one table; later formats (PDF, HTML) add entries. */
typedef struct ingest_doc {
    char *text;          /* UTF-8 text to chunk (front matter removed); owned */
    size_t len;
    char *title;         /* front matter title, first H1, or the file name; owned */
    char *tags_json;     /* JSON array of strings, "[]" when none; owned */
    char *metadata_json; /* JSON object of front matter scalars, "{}" when none; owned */
    int markdown;        /* 1 when the chunker should treat text as markdown */
    size_t *page_starts; /* paged formats (PDF): byte offset in text where page i+1 starts; owned,
                          * NULL when the format has no pages */
    size_t page_count;
    char *warning;       /* set when the text was repaired (invalid UTF-8), or pages were left
                          * out (OCR page cap or timeout): the reason; owned */
    int *ocr_pages;      /* 1-based pages whose text came from OCR, ascending; owned, NULL when
                          * none */
    size_t ocr_page_count;
    double ocr_confidence; /* Tesseract's mean word confidence over those pages, 0..100 */
} ingest_doc;

/* OCR of PDF pages without a text layer ([ingest] ocr*, src/ingest_ocr.c). */
typedef enum ingest_ocr_mode {
    RAGD_OCR_AUTO = 0, /* pages without a text layer are OCRed */
    RAGD_OCR_OFF,      /* never: such pages are left out */
    RAGD_OCR_FORCE     /* every page is OCRed, text layer or not */
} ingest_ocr_mode;

typedef struct ingest_ocr_opts {
    ingest_ocr_mode mode;
    const char *languages; /* borrowed; Tesseract "eng+deu"; NULL means "eng" */
    int page_timeout_ms;   /* 0: 60000 */
    int max_pages;         /* pages OCRed per file at most; negative: 100 */
    int dpi;               /* 0: 300 */
} ingest_ocr_opts;

/* Returns: the mode named s ("auto", "off", "force"); RAGD_OCR_AUTO for anything else. */
ingest_ocr_mode ingest_ocr_mode_parse(const char *s);

/* How files are read beyond their extension (from [ingest] in the configuration). */
typedef struct ingest_extract_opts {
    int unknown_as_text; /* files of unknown extension are read as plain text */
    int repair_utf8;     /* invalid UTF-8 is replaced by U+FFFD (with a warning), not refused */
    const ingest_ocr_opts *ocr; /* NULL: OCR with the defaults (auto) */
} ingest_extract_opts;

/* Returns: 1 if path would be read with these options (some extractor handles its extension, or
 * opts->unknown_as_text). opts may be NULL (extension only). */
int ingest_extract_accepted(const char *path, const ingest_extract_opts *opts);

/* ingest_extract_run with options: unknown extensions as text, invalid UTF-8 repaired. A binary
 * file (NUL bytes in a text format) always fails with RAGD_ERR_INVALID, "binary file".
 * Encrypted, corrupt or text-less PDFs fail with RAGD_ERR_INVALID and the reason.
 * Returns: RAGD_OK and *out (fields new, free with ingest_doc_free). */
ragd_rc ingest_extract_file(const char *path, const char *data, size_t len,
                            const ingest_extract_opts *opts, ingest_doc *out, ragd_err *err);

/* Splits a document into chunks like ingest_chunk_split, page by page for paged documents (a
 * chunk never spans two pages, and carries its page number). Returns: RAGD_OK and *out (new, free
 * with ingest_chunk_list_free). */
ragd_rc ingest_doc_split(const ingest_doc *doc, const ingest_chunk_opts *opts,
                         ingest_chunk_list *out, ragd_err *err);

/* ---- format extractors (src/ingest_pdf.c, src/ingest_html.c, src/ingest_rst.c) -------------
 * Each takes the raw bytes and fills *out (fields new) or fails with a per-file reason. The
 * caller (ingest_extract.c) has already checked UTF-8 for the text formats. */
ragd_rc ingest_pdf_extract(const char *path, const char *data, size_t len, ingest_doc *out,
                           ragd_err *err);
/* ingest_pdf_extract with OCR options (NULL: defaults): text layer first, OCR for pages without
 * one (or every page with RAGD_OCR_FORCE); OCRed pages keep their page number and are listed in
 * out->ocr_pages with the mean confidence. */
ragd_rc ingest_pdf_extract_ocr(const char *path, const char *data, size_t len,
                               const ingest_ocr_opts *ocr, ingest_doc *out, ragd_err *err);
ragd_rc ingest_html_extract(const char *path, const char *data, size_t len, ingest_doc *out,
                            ragd_err *err);
ragd_rc ingest_rst_extract(const char *path, const char *data, size_t len, ingest_doc *out,
                           ragd_err *err);

/* ---- Office and spreadsheet extractors (src/ingest_office.c, src/ingest_sheet.c) -----------
 * .docx/.odt become markdown (headings, lists, tables); .xlsx/.ods/.csv/.tsv one "# Sheet"
 * section per sheet with rows as "Column: value; ..." paragraphs. Zip bombs, DOCTYPEs (entity
 * expansion), encrypted and corrupt files fail with RAGD_ERR_INVALID or RAGD_ERR_TOO_LARGE. */
ragd_rc ingest_docx_extract(const char *path, const char *data, size_t len, ingest_doc *out,
                            ragd_err *err);
ragd_rc ingest_odt_extract(const char *path, const char *data, size_t len, ingest_doc *out,
                           ragd_err *err);
ragd_rc ingest_xlsx_extract(const char *path, const char *data, size_t len, ingest_doc *out,
                            ragd_err *err);
ragd_rc ingest_ods_extract(const char *path, const char *data, size_t len, ingest_doc *out,
                           ragd_err *err);
ragd_rc ingest_csv_extract(const char *path, const char *data, size_t len, ingest_doc *out,
                           ragd_err *err);

/* ---- include / exclude globs (src/ingest_glob.c) -------------------------------------------
 * A pattern with a '/' is matched (fnmatch, '*' crossing '/') against the whole relative path; a
 * pattern without one against the file name and, for excludes, against every directory name on
 * the path too ("drafts" excludes everything under any drafts/ directory). */
typedef struct ingest_globs {
    const char *const *include; /* borrowed; NULL or empty: every file is included */
    size_t include_count;
    const char *const *exclude; /* borrowed; may be NULL */
    size_t exclude_count;
} ingest_globs;

/* Returns: 1 when the relative path is selected: it matches some include (or there are none) and
 * no exclude. globs may be NULL (everything selected). */
int ingest_glob_selected(const ingest_globs *globs, const char *relative);

/* Returns: 1 when pattern is acceptable (non-empty, at most 256 bytes, no NUL). */
int ingest_glob_valid(const char *pattern);

/* Returns: 1 if some extractor handles the file name (by extension, case-insensitive), else 0. */
int ingest_extract_supported(const char *path);

/* Extracts raw bytes data[0..len) of the file at path (path is used for the extension and the
 * fallback title). Invalid UTF-8 or NUL bytes fail with RAGD_ERR_INVALID and a reason.
 * Returns: RAGD_OK and *out (fields new, free with ingest_doc_free). */
ragd_rc ingest_extract_run(const char *path, const char *data, size_t len, ingest_doc *out,
                           ragd_err *err);

/* Frees the fields of doc and zeroes it. doc may be NULL. */
void ingest_doc_free(ingest_doc *doc);

/* ---- crawler (src/ingest_crawl.c) ---------------------------------------------------------- */
typedef struct ingest_file {
    char *path;     /* the file's path inside the crawl root, root + "/" + relative (a single file
                     * ingested on its own: its canonical path); the store's key; owned */
    char *relative; /* path relative to the crawl root ("business/refunds.md"); owned */
    int64_t size;
    int64_t mtime;
    char *resolved; /* where the bytes are, relative to root_fd, with no symlink and no "..":
                     * relative itself, or the in-root target of a symlink on it; owned */
    uint64_t dev, ino; /* the file the crawl saw at resolved; ingest_file_read checks them */
    int root_fd;    /* borrowed from the list: the root directory's descriptor */
} ingest_file;

typedef struct ingest_file_list {
    ingest_file *items;
    size_t count;
    size_t unreadable; /* directories or entries below root that could not be read: when
                        * non-zero the listing is incomplete */
    ingest_file *skipped;  /* entries not read, with .path holding the reason (symlinks that
                            * leave the root, special files); owned */
    size_t skipped_count;
    int root_fd;       /* O_PATH descriptor of the root directory (of a single file: its
                        * directory) the items are opened from; owned when root_fd_open */
    int root_fd_open;
} ingest_file_list;

/* What a crawl lists beyond supported extensions. */
typedef struct ingest_crawl_opts {
    const ingest_extract_opts *extract; /* may be NULL */
    const ingest_globs *globs;          /* may be NULL */
    int root_canonical; /* root is a canonical path someone checked: it must still resolve to
                         * itself (else RAGD_ERR_FORBIDDEN, nothing listed) */
} ingest_crawl_opts;

/* Lists supported files under root (a directory, walked recursively, or a single file), sorted by
 * relative path. Hidden entries (".git", ".cache") are skipped; symlinks are followed only when
 * they stay inside root; directories are opened from root's descriptor without following links,
 * so a directory swapped for a link during the walk is not entered (counted unreadable).
 * *root_abs receives the canonical root directory (new, free()).
 * Returns: RAGD_OK, RAGD_ERR_NOT_FOUND when root does not exist, RAGD_ERR_IO. */
ragd_rc ingest_crawl_run(const char *root, ingest_file_list *out, char **root_abs, ragd_err *err);

/* ingest_crawl_run with options: files of unknown extension (opts->extract), include/exclude
 * globs on relative paths (opts->globs). A symlink below root whose target leaves root is not
 * followed and is listed in out->skipped with the reason. opts may be NULL. */
ragd_rc ingest_crawl_scan(const char *root, const ingest_crawl_opts *opts, ingest_file_list *out,
                          char **root_abs, ragd_err *err);

/* Reads file f of a crawl (at most max_bytes) without ever leaving its root: f->resolved is
 * opened from the root's descriptor one component at a time, following no symlink and never
 * blocking (O_NONBLOCK), and what was opened must still be the regular file the crawl saw (device
 * and inode). A file swapped since the crawl for a symlink, a FIFO, a device or another file fails
 * with RAGD_ERR_IO and the reason, before a byte is read; a vanished one with RAGD_ERR_NOT_FOUND.
 * Returns: RAGD_OK and *out (new, NUL-terminated, free with free()) and *len. */
ragd_rc ingest_file_read(const ingest_file *f, size_t max_bytes, char **out, size_t *len,
                         ragd_err *err);

/* Frees the list and closes its root descriptor. list may be NULL. */
void ingest_file_list_free(ingest_file_list *list);

#endif
