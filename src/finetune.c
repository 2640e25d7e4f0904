/* SPDX-License-Identifier: MIT */
/*
 * finetune.c - `ragd finetune check FILE` and `ragd finetune convert FILE --to openai-chat`: the
 * phase-2 fine-tune dataset (data/finetune/README.md). A row is the roadmap's
 * {"input": ..., "output": ..., "category": ...} (the OpenAI chat shape {"messages": [...]} is
 * accepted too). check validates every line (JSON object, known fields, non-empty input and
 * output, a known category, duplicates and conflicting duplicates), counts tokens with the
 * chunker's estimator, reports the share of each category (warning when refusals, "I don't
 * know" or clarifications are missing) and estimates the training cost; it exits 0 when the file
 * is valid and 1 naming every bad line by number. convert writes the rows as OpenAI chat
 * fine-tune rows (system = the persona prompt, user = input, assistant = output).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ragd/cfg.h"
#include "ragd/finetune.h"
#include "ragd/ingest.h"
#include "ragd/retrieve.h"
#include "ragd/util.h"

#define LINE_MAX_BYTES (1u << 20)
#define EXAMPLE_TOKENS_MAX 65536
#define DEFAULT_EPOCHS 3
#define DEFAULT_PRICE 3.0 /* USD per 1M training tokens (gpt-4o-mini fine-tuning) */

static const char usage_finetune[] =
    "usage: ragd finetune check FILE.jsonl [--epochs N] [--price-per-million USD] [--json]\n"
    "       ragd finetune convert FILE.jsonl --to openai-chat [--output OUT] [--config FILE]\n"
    "\n"
    "The phase-2 fine-tune dataset (data/finetune/README.md): one JSON object per line,\n"
    "{\"input\": \"user text\", \"output\": \"Mathia's answer\", \"category\": \"support\"} (or the\n"
    "OpenAI chat shape {\"messages\": [...]}). Categories: support, workflows, travel, payments,\n"
    "dont_know, refusal, clarification.\n"
    "\n"
    "check    validates every line (schema, empty or duplicate pairs), counts tokens, shows the\n"
    "         share of each category (warning when refusals, dont_know or clarifications are\n"
    "         missing) and estimates the training cost (tokens x epochs x price). Exit 0 when\n"
    "         valid, 1 naming every bad line, 2 for usage errors.\n"
    "convert  writes OpenAI chat fine-tune rows (system: the persona prompt of [prompt],\n"
    "         user: input, assistant: output) to OUT or stdout; refuses an invalid file.\n"
    "\n"
    "  --epochs N                training epochs for the estimate (default 3)\n"
    "  --price-per-million USD   training price per million tokens (default 3.00)\n"
    "  --json                    print the check report as JSON\n";

static const char *const categories[] = {"support", "workflows", "travel", "payments",
                                         "dont_know", "refusal", "clarification", NULL};
#define CATEGORY_COUNT 7
/* The categories a dataset must not lack: without them the model learns to guess. */
static const char *const safety_categories[] = {"refusal", "dont_know", "clarification", NULL};

typedef struct row {
    char *input, *output, *category; /* owned */
    int line;
    int tokens;
} row;

typedef struct dataset {
    row *rows;
    size_t count, cap;
    int errors;
    int lines;
    json_t *problems; /* [{"line", "message"}] */
} dataset;

static void problem(dataset *d, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void problem(dataset *d, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    d->errors++;
    json_array_append_new(d->problems, json_pack("{s:i, s:s}", "line", line, "message", msg));
}

static int blank(const char *s)
{
    for (; s && *s; s++)
        if (!isspace((unsigned char)*s)) return 0;
    return 1;
}

/* Returns: s lower-cased with runs of white space folded, for duplicate detection; new. */
static char *normalise(const char *s)
{
    util_buf b = {0};
    int space = 0;
    for (; *s; s++) {
        if (isspace((unsigned char)*s)) {
            space = b.len > 0;
            continue;
        }
        if (space) util_buf_append(&b, " ", 1);
        space = 0;
        char c = (char)tolower((unsigned char)*s);
        util_buf_append(&b, &c, 1);
    }
    return util_buf_steal(&b);
}

/* Takes input/output out of the OpenAI chat shape: the last user and assistant messages. */
static int from_messages(json_t *msgs, const char **input, const char **output)
{
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *content = json_string_value(json_object_get(m, "content"));
        if (role == NULL || content == NULL) return -1;
        if (strcmp(role, "user") == 0) *input = content;
        else if (strcmp(role, "assistant") == 0) *output = content;
        else if (strcmp(role, "system") != 0) return -1;
    }
    return 0;
}

static void row_add(dataset *d, int line, const char *input, const char *output,
                    const char *category)
{
    if (d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        row *grown = realloc(d->rows, cap * sizeof *grown);
        if (grown == NULL) {
            problem(d, line, "out of memory");
            return;
        }
        d->rows = grown;
        d->cap = cap;
    }
    row *r = &d->rows[d->count++];
    r->line = line;
    r->input = strdup(input);
    r->output = strdup(output);
    r->category = category ? strdup(category) : NULL;
    r->tokens = (int)(ingest_tokens_count(input, strlen(input)) +
                      ingest_tokens_count(output, strlen(output)));
}

static void line_check(dataset *d, int line, const char *text, size_t len)
{
    static const char *const fields[] = {"input", "output", "category", "messages", "id",
                                         "intent", "source", "notes", "tags", NULL};
    json_error_t jerr;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL) {
        problem(d, line, "not valid JSON: %s (column %d)", jerr.text, jerr.column);
        return;
    }
    if (!json_is_object(o)) {
        problem(d, line, "must be a JSON object");
        json_decref(o);
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        int known = 0;
        for (size_t i = 0; fields[i] && !known; i++) known = strcmp(key, fields[i]) == 0;
        if (!known) {
            problem(d, line, "unknown field '%.64s' (known: input, output, category, messages, "
                    "id, intent, source, notes, tags)", key);
            json_decref(o);
            return;
        }
    }
    const char *input = json_string_value(json_object_get(o, "input"));
    const char *output = json_string_value(json_object_get(o, "output"));
    json_t *msgs = json_object_get(o, "messages");
    if (msgs != NULL) {
        if (!json_is_array(msgs) || from_messages(msgs, &input, &output) != 0) {
            problem(d, line, "'messages' must be an array of {role: system|user|assistant, "
                    "content: string}");
            json_decref(o);
            return;
        }
    } else if ((json_object_get(o, "input") && !input) ||
               (json_object_get(o, "output") && !output)) {
        problem(d, line, "'input' and 'output' must be strings");
        json_decref(o);
        return;
    }
    int bad = 0;
    if (input == NULL || blank(input)) {
        problem(d, line, "empty or missing input (the user's message)");
        bad = 1;
    }
    if (output == NULL || blank(output)) {
        problem(d, line, "empty or missing output (the answer)");
        bad = 1;
    }
    json_t *c = json_object_get(o, "category");
    const char *category = json_string_value(c);
    if (c != NULL && category == NULL) {
        problem(d, line, "'category' must be a string");
        bad = 1;
    } else if (category != NULL) {
        int known = 0;
        for (size_t i = 0; categories[i] && !known; i++) known = strcmp(category, categories[i]) == 0;
        if (!known) {
            problem(d, line, "unknown category '%.64s' (support, workflows, travel, payments, "
                    "dont_know, refusal, clarification)", category);
            bad = 1;
        }
    }
    if (!bad) row_add(d, line, input, output, category);
    json_decref(o);
}

static void duplicates_check(dataset *d)
{
    char **keys = calloc(d->count ? d->count : 1, sizeof *keys);
    char **outs = calloc(d->count ? d->count : 1, sizeof *outs);
    for (size_t i = 0; keys && outs && i < d->count; i++) {
        keys[i] = normalise(d->rows[i].input);
        outs[i] = normalise(d->rows[i].output);
        for (size_t j = 0; keys[i] && outs[i] && j < i; j++) {
            if (keys[j] == NULL || strcmp(keys[i], keys[j]) != 0) continue;
            if (outs[j] && strcmp(outs[i], outs[j]) == 0)
                problem(d, d->rows[i].line, "duplicate of line %d (same input and output)",
                        d->rows[j].line);
            else
                problem(d, d->rows[i].line, "same input as line %d with a different output "
                        "(conflicting examples)", d->rows[j].line);
            break;
        }
    }
    for (size_t i = 0; keys && outs && i < d->count; i++) {
        free(keys[i]);
        free(outs[i]);
    }
    free(keys);
    free(outs);
}

static void dataset_free(dataset *d)
{
    for (size_t i = 0; i < d->count; i++) {
        free(d->rows[i].input);
        free(d->rows[i].output);
        free(d->rows[i].category);
    }
    free(d->rows);
    json_decref(d->problems);
    memset(d, 0, sizeof *d);
}

/* Reads and checks path into d. Returns: 0, or -1 when the file cannot be read (message
 * printed). */
static int dataset_load(const char *path, dataset *d)
{
    memset(d, 0, sizeof *d);
    d->problems = json_array();
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "ragd: %s: %s\n", path, strerror(errno));
        dataset_free(d);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        d->lines++;
        size_t len = (size_t)n;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        if (len == 0) continue; /* blank lines are allowed between rows */
        if (len > LINE_MAX_BYTES) {
            problem(d, d->lines, "line longer than %u bytes", LINE_MAX_BYTES);
            continue;
        }
        if (!util_utf8_valid(line, len) || memchr(line, '\0', len)) {
            problem(d, d->lines, "not valid UTF-8 text");
            continue;
        }
        line_check(d, d->lines, line, len);
    }
    free(line);
    fclose(f);
    duplicates_check(d);
    /* report in line order: duplicates are found after the lines they repeat */
    size_t count = json_array_size(d->problems);
    for (size_t i = 1; i < count; i++) {
        for (size_t j = i; j > 0; j--) {
            json_t *a = json_array_get(d->problems, j - 1), *b = json_array_get(d->problems, j);
            if (json_integer_value(json_object_get(a, "line")) <=
                json_integer_value(json_object_get(b, "line")))
                break;
            json_incref(a);
            json_array_set(d->problems, j - 1, b);
            json_array_set_new(d->problems, j, a);
        }
    }
    return 0;
}

/* The persona prompt: the first paragraph of the [prompt] template, rendered. Returns: new. */
static char *persona_prompt(const ragd_cfg *cfg)
{
    char *file_text = NULL;
    const char *tmpl = retrieve_prompt_default();
    if (cfg->prompt_template && cfg->prompt_template[0]) {
        size_t n = 0;
        if (util_file_read(cfg->prompt_template, 1u << 20, &file_text, &n, NULL) == RAGD_OK)
            tmpl = file_text;
    }
    retrieve_prompt_vars v = {.persona = cfg->prompt_persona, .tools = cfg->prompt_tools,
                              .context = "", .sources = "", .question = "", .clarify = ""};
    char *out = NULL;
    if (retrieve_prompt_render(tmpl, &v, &out, NULL) != RAGD_OK) out = NULL;
    free(file_text);
    if (out == NULL) {
        util_buf b = {0};
        util_buf_printf(&b, "You are %s, the team's assistant.", cfg->prompt_persona);
        return util_buf_steal(&b);
    }
    char *para = strstr(out, "\n\n");
    if (para) *para = '\0';
    return out;
}

static int cmd_check(const char *path, int epochs, double price, int as_json,
                     const char *config)
{
    ragd_cfg cfg;
    ragd_err err = {0};
    if (cfg_load(&cfg, config, &err) != RAGD_OK) {
        fprintf(stderr, "ragd: %s\n", err.msg);
        return 2;
    }
    /* Every converted row carries the persona prompt: it is trained on too. */
    char *system = persona_prompt(&cfg);
    int system_tokens = system ? (int)ingest_tokens_count(system, strlen(system)) : 0;
    free(system);
    cfg_free(&cfg);
    dataset d;
    if (dataset_load(path, &d) != 0) return 1;
    for (size_t i = 0; i < d.count; i++) d.rows[i].tokens += system_tokens;
    long long tokens = 0;
    int max_tokens = 0, per[CATEGORY_COUNT + 1] = {0};
    for (size_t i = 0; i < d.count; i++) {
        row *r = &d.rows[i];
        tokens += r->tokens;
        if (r->tokens > max_tokens) max_tokens = r->tokens;
        if (r->tokens > EXAMPLE_TOKENS_MAX)
            problem(&d, r->line, "example of %d tokens is over the %d a training example may "
                    "hold", r->tokens, EXAMPLE_TOKENS_MAX);
        size_t c = CATEGORY_COUNT;
        for (size_t k = 0; r->category && k < CATEGORY_COUNT; k++)
            if (strcmp(r->category, categories[k]) == 0) c = k;
        per[c]++;
    }
    json_t *warnings = json_array();
    for (size_t s = 0; safety_categories[s]; s++) {
        size_t k = 0;
        while (strcmp(categories[k], safety_categories[s]) != 0) k++;
        if (per[k] == 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "no '%s' examples: the model will not learn to %s",
                     categories[k], k == 4 ? "say it does not know"
                                   : k == 5 ? "refuse unsafe requests" : "ask for clarification");
            json_array_append_new(warnings, json_string(msg));
        }
    }
    if (per[CATEGORY_COUNT] > 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "%d examples have no category: their share cannot be checked",
                 per[CATEGORY_COUNT]);
        json_array_append_new(warnings, json_string(msg));
    }
    if (d.count > 0 && d.count < 50) {
        char msg[160];
        snprintf(msg, sizeof msg, "only %zu examples: collect 200-1,000 for a useful fine-tune",
                 d.count);
        json_array_append_new(warnings, json_string(msg));
    }
    double cost = (double)tokens * epochs * price / 1e6;
    json_t *shares = json_object();
    for (size_t k = 0; k <= CATEGORY_COUNT; k++) {
        if (k == CATEGORY_COUNT && per[k] == 0) continue;
        json_object_set_new(shares, k < CATEGORY_COUNT ? categories[k] : "uncategorized",
                            json_pack("{s:i, s:f}", "examples", per[k], "share",
                                      d.count ? (double)per[k] / (double)d.count : 0.0));
    }
    int valid = d.errors == 0;
    if (as_json) {
        json_t *o = json_pack("{s:s, s:b, s:I, s:i, s:O, s:{s:I, s:I, s:i}, s:o, s:{s:i, s:f, "
                              "s:f}, s:O}",
                              "file", path, "valid", valid, "examples", (json_int_t)d.count,
                              "errors", d.errors, "problems", d.problems, "tokens", "total",
                              (json_int_t)tokens, "mean",
                              (json_int_t)(d.count ? tokens / (long long)d.count : 0), "max",
                              max_tokens, "categories", shares, "estimated_cost", "epochs",
                              epochs, "price_per_million", price, "usd", cost, "warnings",
                              warnings);
        char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(o);
    } else {
        size_t i;
        json_t *p;
        json_array_foreach(d.problems, i, p)
            fprintf(stderr, "%s:%lld: %s\n", path,
                    (long long)json_integer_value(json_object_get(p, "line")),
                    json_string_value(json_object_get(p, "message")));
        printf("%s: %zu examples, %d bad line(s)\n", path, d.count, d.errors);
        printf("tokens: %lld total, %lld mean, %d max (chunker's estimate, with the persona "
               "prompt of each row)\n", tokens,
               d.count ? tokens / (long long)d.count : 0, max_tokens);
        printf("categories:\n");
        for (size_t k = 0; k <= CATEGORY_COUNT; k++) {
            if (k == CATEGORY_COUNT && per[k] == 0) continue;
            printf("  %-14s %4d  %5.1f%%\n", k < CATEGORY_COUNT ? categories[k] : "uncategorized",
                   per[k], d.count ? 100.0 * per[k] / (double)d.count : 0.0);
        }
        printf("estimated training cost: %lld tokens x %d epochs x $%.2f/1M = $%.4f\n", tokens,
               epochs, price, cost);
        json_array_foreach(warnings, i, p)
            printf("warning: %s\n", json_string_value(p));
        printf("%s\n", valid ? "valid" : "INVALID");
        json_decref(shares);
    }
    json_decref(warnings);
    dataset_free(&d);
    return valid ? 0 : 1;
}

static int cmd_convert(const char *path, const char *to, const char *output,
                       const char *config)
{
    if (to == NULL || strcmp(to, "openai-chat") != 0) {
        fprintf(stderr, "ragd: finetune convert needs --to openai-chat\n");
        return 2;
    }
    ragd_cfg cfg;
    ragd_err err = {0};
    if (cfg_load(&cfg, config, &err) != RAGD_OK) {
        fprintf(stderr, "ragd: %s\n", err.msg);
        return 2;
    }
    dataset d;
    if (dataset_load(path, &d) != 0) {
        cfg_free(&cfg);
        return 1;
    }
    if (d.errors > 0) {
        size_t i;
        json_t *p;
        json_array_foreach(d.problems, i, p)
            fprintf(stderr, "%s:%lld: %s\n", path,
                    (long long)json_integer_value(json_object_get(p, "line")),
                    json_string_value(json_object_get(p, "message")));
        fprintf(stderr, "ragd: %s is not valid (%d bad lines); nothing converted\n", path,
                d.errors);
        dataset_free(&d);
        cfg_free(&cfg);
        return 1;
    }
    char *system = persona_prompt(&cfg);
    util_buf out = {0};
    int bad = system == NULL;
    for (size_t i = 0; i < d.count && !bad; i++) {
        json_t *o = json_pack("{s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]}", "messages", "role",
                              "system", "content", system, "role", "user", "content",
                              d.rows[i].input, "role", "assistant", "content", d.rows[i].output);
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        bad |= text == NULL || util_buf_printf(&out, "%s\n", text) != 0;
        free(text);
        json_decref(o);
    }
    int code = 0;
    if (bad) {
        fprintf(stderr, "ragd: out of memory\n");
        code = 1;
    } else if (output != NULL) {
        if (util_file_write_atomic(output, out.data ? out.data : "", out.len, &err) != RAGD_OK) {
            fprintf(stderr, "ragd: %s\n", err.msg);
            code = 1;
        } else {
            fprintf(stderr, "ragd: wrote %zu openai-chat rows to %s\n", d.count, output);
        }
    } else {
        fwrite(out.data ? out.data : "", 1, out.len, stdout);
    }
    util_buf_free(&out);
    free(system);
    dataset_free(&d);
    cfg_free(&cfg);
    return code;
}

int finetune_main(int argc, char **argv)
{
    const char *sub = NULL, *file = NULL, *to = NULL, *output = NULL, *config = NULL;
    int epochs = DEFAULT_EPOCHS, as_json = 0;
    double price = DEFAULT_PRICE;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_finetune, stdout);
            return 0;
        }
        int takes = strcmp(a, "--to") == 0 || strcmp(a, "--output") == 0 ||
                    strcmp(a, "--epochs") == 0 || strcmp(a, "--price-per-million") == 0 ||
                    strcmp(a, "--config") == 0 || strcmp(a, "--data-dir") == 0 ||
                    strcmp(a, "--log-level") == 0;
        if (takes && i + 1 >= argc) {
            fprintf(stderr, "ragd: option %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--to") == 0) to = argv[++i];
        else if (strcmp(a, "--output") == 0) output = argv[++i];
        else if (strcmp(a, "--config") == 0) config = argv[++i];
        else if (strcmp(a, "--data-dir") == 0 || strcmp(a, "--log-level") == 0) i++;
        else if (strcmp(a, "--epochs") == 0) {
            char *end = NULL;
            long v = strtol(argv[++i], &end, 10);
            if (end == argv[i] || *end || v < 1 || v > 100) {
                fprintf(stderr, "ragd: --epochs needs 1..100\n");
                return 2;
            }
            epochs = (int)v;
        } else if (strcmp(a, "--price-per-million") == 0) {
            char *end = NULL;
            price = strtod(argv[++i], &end);
            if (end == argv[i] || *end || !(price >= 0 && price < 1e6)) {
                fprintf(stderr, "ragd: --price-per-million needs a non-negative number\n");
                return 2;
            }
        } else if (strcmp(a, "--json") == 0) as_json = 1;
        else if (a[0] == '-') {
            fprintf(stderr, "ragd: unknown option '%s'\nrun `ragd finetune --help` for usage\n",
                    a);
            return 2;
        } else if (sub == NULL) sub = a;
        else if (file == NULL) file = a;
        else {
            fprintf(stderr, "ragd: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (sub == NULL || file == NULL ||
        (strcmp(sub, "check") != 0 && strcmp(sub, "convert") != 0)) {
        fputs(usage_finetune, stderr);
        return 2;
    }
    if (strcmp(sub, "check") == 0) return cmd_check(file, epochs, price, as_json, config);
    return cmd_convert(file, to, output, config);
}
