/* SPDX-License-Identifier: MIT */
/*
 * optlib.c - loads the optional libraries of src/optlib.h on first use: each group's libraries
 * are opened with dlopen(RTLD_NOW | RTLD_LOCAL) by the soname the build found (the Makefile reads
 * it from the development symlink pkg-config points at and passes it as RAGD_SONAME_*), each
 * function is looked up in its own library's handle, and the group's table is filled once under
 * pthread_once. Libraries are never closed: the tables stay valid for the process's life. A
 * missing library or function makes the group unavailable with the loader's reason, which the
 * callers turn into a per-file error.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "optlib.h"

#if !defined(RAGD_SONAME_POPPLER_GLIB) || !defined(RAGD_SONAME_GOBJECT) ||                        \
    !defined(RAGD_SONAME_GLIB) || !defined(RAGD_SONAME_CAIRO) || !defined(RAGD_SONAME_TESSERACT)
#error "RAGD_SONAME_* not defined: build src/optlib.c with the Makefile (it finds the sonames)"
#endif

/* X(key, soname): the libraries of each group, opened in this order. */
#define OPTLIB_PDF_LIBS(X)                                                                        \
    X(poppler_glib, RAGD_SONAME_POPPLER_GLIB)                                                     \
    X(gobject, RAGD_SONAME_GOBJECT)                                                               \
    X(glib, RAGD_SONAME_GLIB)                                                                     \
    X(cairo, RAGD_SONAME_CAIRO)
#define OPTLIB_OCR_LIBS(X) X(tesseract, RAGD_SONAME_TESSERACT)

_Static_assert(sizeof(void *) == sizeof(void (*)(void)), "dlsym needs code pointers as void *");

enum {
#define PDF_LIB_ENUM(key, soname) PDF_LIB_##key,
    OPTLIB_PDF_LIBS(PDF_LIB_ENUM) PDF_LIB_COUNT
};
enum {
#define OCR_LIB_ENUM(key, soname) OCR_LIB_##key,
    OPTLIB_OCR_LIBS(OCR_LIB_ENUM) OCR_LIB_COUNT
};

typedef struct optlib_library {
    const char *key;    /* the X-macro key, e.g. "glib" */
    const char *soname; /* e.g. "libglib-2.0.so.0" */
} optlib_library;

typedef struct optlib_symbol {
    size_t library; /* index into the group's libraries */
    const char *name;
    size_t offset;  /* of its pointer in the group's struct */
} optlib_symbol;

typedef struct optlib_group {
    const char *name;   /* "pdf", "ocr" */
    const char *failed; /* the error message's start */
    const optlib_library *libraries;
    size_t library_count;
    const optlib_symbol *symbols;
    size_t symbol_count;
    size_t size;        /* of the group's struct */
} optlib_group;

#define LIBRARY_ROW(key, soname) {#key, soname},
static const optlib_library pdf_libraries[] = {OPTLIB_PDF_LIBS(LIBRARY_ROW)};
static const optlib_library ocr_libraries[] = {OPTLIB_OCR_LIBS(LIBRARY_ROW)};

#define PDF_SYMBOL_ROW(library, function)                                                         \
    {PDF_LIB_##library, #function, offsetof(optlib_pdf, function)},
#define OCR_SYMBOL_ROW(library, function)                                                         \
    {OCR_LIB_##library, #function, offsetof(optlib_ocr, function)},
static const optlib_symbol pdf_symbols[] = {OPTLIB_PDF_SYMBOLS(PDF_SYMBOL_ROW)};
static const optlib_symbol ocr_symbols[] = {OPTLIB_OCR_SYMBOLS(OCR_SYMBOL_ROW)};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
static const optlib_group pdf_group = {"pdf", "PDF support unavailable", pdf_libraries,
                                       COUNT(pdf_libraries), pdf_symbols, COUNT(pdf_symbols),
                                       sizeof(optlib_pdf)};
static const optlib_group ocr_group = {"ocr", "OCR unavailable", ocr_libraries,
                                       COUNT(ocr_libraries), ocr_symbols, COUNT(ocr_symbols),
                                       sizeof(optlib_ocr)};
#define MAX_LIBRARIES 8
_Static_assert(COUNT(pdf_libraries) <= MAX_LIBRARIES && COUNT(ocr_libraries) <= MAX_LIBRARIES,
               "raise MAX_LIBRARIES");
_Static_assert(sizeof(optlib_pdf) <= 64 * sizeof(void *) &&
               sizeof(optlib_ocr) <= 64 * sizeof(void *), "raise the loader's scratch table");

/* Opens g's libraries (library's soname replaced by soname when both are set) and fills out
 * (g->size bytes) with its functions. Returns: RAGD_OK; RAGD_ERR_UNSUPPORTED with the loader's
 * reason, out untouched. */
static ragd_rc group_load(const optlib_group *g, const char *library, const char *soname,
                          void *out, ragd_err *err)
{
    void *handles[MAX_LIBRARIES];
    const char *names[MAX_LIBRARIES];
    for (size_t i = 0; i < g->library_count; i++) {
        const optlib_library *l = &g->libraries[i];
        names[i] = library && soname && strcmp(l->key, library) == 0 ? soname : l->soname;
        handles[i] = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (handles[i] == NULL) {
            const char *why = dlerror();
            return ragd_err_set(err, RAGD_ERR_UNSUPPORTED, "%s: %s", g->failed,
                                why ? why : names[i]);
        }
    }
    void *table[64] = {0};
    for (size_t i = 0; i < g->symbol_count; i++) {
        const optlib_symbol *s = &g->symbols[i];
        dlerror(); /* clear a stale error: dlsym's NULL alone is not one */
        void *p = dlsym(handles[s->library], s->name);
        if (p == NULL) {
            const char *why = dlerror();
            if (why != NULL)
                return ragd_err_set(err, RAGD_ERR_UNSUPPORTED, "%s: %s", g->failed, why);
            return ragd_err_set(err, RAGD_ERR_UNSUPPORTED, "%s: %s: symbol %s is NULL", g->failed,
                                names[s->library], s->name);
        }
        memcpy((char *)table + s->offset, &p, sizeof p);
    }
    memcpy(out, table, g->size);
    return RAGD_OK;
}

/* One group's once-per-process state. */
typedef struct optlib_state {
    pthread_once_t once;
    ragd_err error; /* why loading failed */
    int loaded;
} optlib_state;

static optlib_pdf pdf_table;
static optlib_state pdf_state = {PTHREAD_ONCE_INIT, {0}, 0};
static optlib_ocr ocr_table;
static optlib_state ocr_state = {PTHREAD_ONCE_INIT, {0}, 0};

static void pdf_load(void)
{
    pdf_state.loaded =
        group_load(&pdf_group, NULL, NULL, &pdf_table, &pdf_state.error) == RAGD_OK;
}

static void ocr_load(void)
{
    ocr_state.loaded =
        group_load(&ocr_group, NULL, NULL, &ocr_table, &ocr_state.error) == RAGD_OK;
}

/* Runs load once. Returns: table (borrowed, process life) or NULL with err set from s. */
static const void *group_get(optlib_state *s, void (*load)(void), const void *table, ragd_err *err)
{
    pthread_once(&s->once, load);
    if (s->loaded) return table;
    ragd_err_set(err, s->error.rc, "%s", s->error.msg);
    return NULL;
}

const optlib_pdf *optlib_pdf_get(ragd_err *err)
{
    return group_get(&pdf_state, pdf_load, &pdf_table, err);
}

const optlib_ocr *optlib_ocr_get(ragd_err *err)
{
    return group_get(&ocr_state, ocr_load, &ocr_table, err);
}

ragd_rc optlib_load_group_for_test(const char *group, const char *library, const char *soname,
                                   void *out, ragd_err *err)
{
    const optlib_group *g = group && strcmp(group, "pdf") == 0   ? &pdf_group
                            : group && strcmp(group, "ocr") == 0 ? &ocr_group
                                                                 : NULL;
    if (g == NULL) return ragd_err_set(err, RAGD_ERR_INVALID, "no library group '%s'", group);
    int known = library == NULL;
    for (size_t i = 0; !known && i < g->library_count; i++)
        known = strcmp(g->libraries[i].key, library) == 0;
    if (!known)
        return ragd_err_set(err, RAGD_ERR_INVALID, "group %s has no library '%s'", g->name,
                            library);
    return group_load(g, library, soname, out, err);
}
