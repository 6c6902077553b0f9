/*
 * filter.c — the filter language over user.* metadata: parsing a filter
 * text into a compiled st_filter, and comparing a stored value with a
 * literal (the grammar is in store.h, st_filter_parse).
 *
 * A filter is a tree of nodes in one array: AND and OR nodes list their
 * children through `first`/`next`, NOT has one child, CMP, IN and EXISTS
 * are leaves naming a key and (CMP, IN) a run of literals. The evaluator
 * (filter_eval.c) walks it; nothing here touches LMDB.
 *
 * Invariants
 *   1. The parser never reads past the length it is given, recurses at
 *      most ST_FILTER_DEPTH_MAX deep and builds at most ST_FILTER_NODES_MAX
 *      nodes and ST_FILTER_LITS_MAX literals, whatever the input.
 *   2. A compiled filter has a root; every key is 1..ST_XATTR_NAME_MAX - 5
 *      bytes without "user." and without NUL, every literal at most
 *      ST_XATTR_VALUE_MAX bytes, every string NUL-terminated (literals may
 *      hold NUL bytes before their end).
 *   3. On error *out is NULL and, when the caller gave room, err holds one
 *      line saying what and where (byte offset into the text).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ------------------------------------------------------------------ */
/* Numbers and comparison                                               */
/* ------------------------------------------------------------------ */

bool st_filter_number(const void *p, size_t len, double *out)
{
    /* Decimal only: strtod would also take "inf", "nan", hex and leading
     * white space, none of which a user means as a number here. */
    char buf[64];
    const char *s = p;
    if (len == 0 || len >= sizeof buf)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!(isdigit((unsigned char)c) || c == '+' || c == '-' || c == '.' || c == 'e' ||
              c == 'E'))
            return false;
    }
    if (!isdigit((unsigned char)s[0]) &&
        !(len > 1 && (isdigit((unsigned char)s[1]) || s[1] == '.')))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    double d = strtod(buf, &end);
    if (end != buf + len || !isfinite(d))
        return false;
    *out = d;
    return true;
}

int st_filter_cmp(const void *val, size_t len, const st_flit *lit)
{
    double d;
    if (lit->is_num && st_filter_number(val, len, &d))
        return d < lit->num ? -1 : d > lit->num ? 1 : 0;
    size_t n = len < lit->len ? len : lit->len;
    int c = n ? memcmp(val, lit->p, n) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return len < lit->len ? -1 : len > lit->len ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* The compiled filter                                                  */
/* ------------------------------------------------------------------ */

void st_filter_free(st_filter *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->nkeys; i++)
        free(f->keys[i].p);
    for (size_t i = 0; i < f->nlits; i++)
        free(f->lits[i].p);
    free(f->keys);
    free(f->lits);
    free(f->nodes);
    free(f);
}

/* A new, empty filter with room for the limits (invariant 1). */
static st_filter *filter_new(void)
{
    st_filter *f = vc_calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->nodes = vc_calloc(ST_FILTER_NODES_MAX, sizeof *f->nodes);
    f->keys = vc_calloc(ST_FILTER_NODES_MAX, sizeof *f->keys);
    f->lits = vc_calloc(ST_FILTER_LITS_MAX, sizeof *f->lits);
    if (!f->nodes || !f->keys || !f->lits) {
        st_filter_free(f);
        return NULL;
    }
    return f;
}

/* A new node of kind; its index, or -1 when the filter is full. */
static int node_add(st_filter *f, st_fkind kind)
{
    if (f->nnodes >= ST_FILTER_NODES_MAX)
        return -1;
    st_fnode *n = &f->nodes[f->nnodes];
    *n = (st_fnode){.kind = kind, .first = -1, .next = -1};
    return (int)f->nnodes++;
}

/* Appends child to the children of node parent (AND/OR/NOT). */
static void node_adopt(st_filter *f, int parent, int child)
{
    st_fnode *p = &f->nodes[parent];
    if (p->first < 0) {
        p->first = child;
        return;
    }
    int c = p->first;
    while (f->nodes[c].next >= 0)
        c = f->nodes[c].next;
    f->nodes[c].next = child;
}

/* Adds key (len bytes, "user." dropped) to f; *idx its index. 0, -EINVAL
 * (empty, NUL inside), -E2BIG. */
static int key_add(st_filter *f, const char *key, size_t len, uint32_t *idx)
{
    if (len >= 5 && memcmp(key, "user.", 5) == 0) {
        key += 5;
        len -= 5;
    }
    if (len == 0 || memchr(key, '\0', len))
        return -EINVAL;
    if (len > ST_XATTR_NAME_MAX - 5)
        return -E2BIG;
    char *p = vc_malloc(len + 1);
    if (!p)
        return -ENOMEM;
    memcpy(p, key, len);
    p[len] = '\0';
    f->keys[f->nkeys] = (st_fstr){p, len};
    *idx = (uint32_t)f->nkeys++;
    return 0;
}

/* Adds literal (len bytes) to f. 0, -EINVAL (too many), -E2BIG, -ENOMEM. */
static int lit_add(st_filter *f, const char *v, size_t len)
{
    if (f->nlits >= ST_FILTER_LITS_MAX)
        return -EINVAL;
    if (len > ST_XATTR_VALUE_MAX)
        return -E2BIG;
    char *p = vc_malloc(len + 1);
    if (!p)
        return -ENOMEM;
    if (len)
        memcpy(p, v, len);
    p[len] = '\0';
    st_flit *l = &f->lits[f->nlits++];
    *l = (st_flit){.p = p, .len = len};
    l->is_num = st_filter_number(p, len, &l->num);
    return 0;
}

/* One equality of the old form: the xattr "user.<key>" equals value. */
typedef struct eq_term {
    const char *key; /* without the "user." prefix */
    const void *value;
    size_t value_len;
} eq_term;

/* The AND of n equality terms as a filter (n 0: *out NULL). 0, -EINVAL
 * (a term without key, too many), -E2BIG, -ENOMEM. */
static int filter_from_terms(const eq_term *terms, size_t n, st_filter **out)
{
    *out = NULL;
    if (n == 0)
        return 0;
    if (!terms || n >= ST_FILTER_NODES_MAX || n > ST_FILTER_LITS_MAX)
        return -EINVAL;
    st_filter *f = filter_new();
    if (!f)
        return -ENOMEM;
    int rc = 0;
    f->root = node_add(f, ST_FK_AND);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const eq_term *t = &terms[i];
        if (!t->key || (!t->value && t->value_len)) {
            rc = -EINVAL;
            break;
        }
        int leaf = node_add(f, ST_FK_CMP);
        f->nodes[leaf].op = ST_FOP_EQ;
        f->nodes[leaf].lit = (uint32_t)f->nlits;
        f->nodes[leaf].nlit = 1;
        rc = key_add(f, t->key, strlen(t->key), &f->nodes[leaf].key);
        if (rc == 0)
            rc = lit_add(f, t->value ? t->value : "", t->value_len);
        if (rc == 0)
            node_adopt(f, f->root, leaf);
    }
    if (rc) {
        st_filter_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Tokens                                                               */
/* ------------------------------------------------------------------ */

typedef enum tok_kind {
    TOK_END,
    TOK_LPAREN,
    TOK_RPAREN,
    TOK_COMMA,
    TOK_OP,     /* op holds which */
    TOK_WORD,   /* a bare word (keywords are words) */
    TOK_STRING, /* a quoted string, unescaped into the parser's buffer */
} tok_kind;

typedef struct parser {
    const char *s;
    size_t len, pos;
    st_filter *f;
    char *err;
    size_t errcap;
    /* The current token. */
    tok_kind tok;
    size_t tok_at; /* its offset, for messages */
    st_fop op;
    const char *word; /* TOK_WORD: into s; TOK_STRING: into sbuf */
    size_t wlen;
    vc_buf sbuf;
} parser;

/* Writes the one-line message (invariant 3) and returns rc. */
static int fail(parser *ps, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(parser *ps, int rc, const char *fmt, ...)
{
    if (ps->err && ps->errcap && rc != -ENOMEM) {
        va_list ap;
        va_start(ap, fmt);
        int n = snprintf(ps->err, ps->errcap, "filter: ");
        if (n > 0 && (size_t)n < ps->errcap)
            vsnprintf(ps->err + n, ps->errcap - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* A byte that ends a bare word. */
static bool is_delim(char c)
{
    return is_ws(c) || c == '(' || c == ')' || c == ',' || c == '=' || c == '!' || c == '<' ||
           c == '>' || c == '"' || c == '\'' || c == '\0';
}

/* Reads a quoted string starting at the quote at ps->pos into sbuf. */
static int lex_string(parser *ps)
{
    char q = ps->s[ps->pos++];
    vc_buf_reset(&ps->sbuf);
    while (ps->pos < ps->len) {
        char c = ps->s[ps->pos++];
        if (c == q) {
            ps->tok = TOK_STRING;
            ps->word = ps->sbuf.len ? ps->sbuf.p : "";
            ps->wlen = ps->sbuf.len;
            return 0;
        }
        if (c == '\\') {
            if (ps->pos >= ps->len)
                break;
            c = ps->s[ps->pos++];
        }
        if (ps->sbuf.len >= ST_XATTR_VALUE_MAX)
            return fail(ps, -E2BIG, "quoted string at byte %zu is over %u bytes", ps->tok_at,
                        ST_XATTR_VALUE_MAX);
        if (vc_buf_append(&ps->sbuf, &c, 1))
            return -ENOMEM;
    }
    return fail(ps, -EINVAL, "quoted string at byte %zu has no closing %c", ps->tok_at, q);
}

/* Moves to the next token. */
static int lex(parser *ps)
{
    while (ps->pos < ps->len && is_ws(ps->s[ps->pos]))
        ps->pos++;
    ps->tok_at = ps->pos;
    if (ps->pos >= ps->len) {
        ps->tok = TOK_END;
        return 0;
    }
    char c = ps->s[ps->pos];
    char d = ps->pos + 1 < ps->len ? ps->s[ps->pos + 1] : '\0';
    switch (c) {
    case '(':
        ps->pos++;
        ps->tok = TOK_LPAREN;
        return 0;
    case ')':
        ps->pos++;
        ps->tok = TOK_RPAREN;
        return 0;
    case ',':
        ps->pos++;
        ps->tok = TOK_COMMA;
        return 0;
    case '"':
    case '\'':
        return lex_string(ps);
    case '=':
        ps->pos += d == '=' ? 2 : 1; /* "==" reads as "=" */
        ps->tok = TOK_OP;
        ps->op = ST_FOP_EQ;
        return 0;
    case '!':
        if (d != '=')
            return fail(ps, -EINVAL, "'!' at byte %zu is not followed by '='", ps->pos);
        ps->pos += 2;
        ps->tok = TOK_OP;
        ps->op = ST_FOP_NE;
        return 0;
    case '<':
    case '>':
        ps->pos += d == '=' ? 2 : 1;
        ps->tok = TOK_OP;
        ps->op = c == '<' ? (d == '=' ? ST_FOP_LE : ST_FOP_LT) : (d == '=' ? ST_FOP_GE : ST_FOP_GT);
        return 0;
    case '\0':
        return fail(ps, -EINVAL, "NUL byte at byte %zu", ps->pos);
    default:
        break;
    }
    size_t start = ps->pos;
    while (ps->pos < ps->len && !is_delim(ps->s[ps->pos]))
        ps->pos++;
    ps->tok = TOK_WORD;
    ps->word = ps->s + start;
    ps->wlen = ps->pos - start;
    return 0;
}

/* The current token is the bare word kw (any case). */
static bool is_kw(const parser *ps, const char *kw)
{
    size_t n = strlen(kw);
    if (ps->tok != TOK_WORD || ps->wlen != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)ps->word[i]) != kw[i])
            return false;
    return true;
}

/* The current token is a key or value: a word that is no keyword, or a
 * quoted string. */
static bool is_atom(const parser *ps)
{
    if (ps->tok == TOK_STRING)
        return true;
    return ps->tok == TOK_WORD && !is_kw(ps, "and") && !is_kw(ps, "or") && !is_kw(ps, "not") &&
           !is_kw(ps, "in") && !is_kw(ps, "exists");
}

/* ------------------------------------------------------------------ */
/* Grammar                                                              */
/* ------------------------------------------------------------------ */

static int parse_or(parser *ps, unsigned depth, int *out);

/* Adds the current atom as a key to node `node`, with a message. */
static int take_key(parser *ps, int node)
{
    int rc = key_add(ps->f, ps->word, ps->wlen, &ps->f->nodes[node].key);
    if (rc == -EINVAL)
        return fail(ps, rc, "empty key at byte %zu", ps->tok_at);
    if (rc == -E2BIG)
        return fail(ps, rc, "key at byte %zu is over %u bytes", ps->tok_at, ST_XATTR_NAME_MAX - 5);
    return rc;
}

/* Adds the current atom as a literal, with a message. */
static int take_lit(parser *ps)
{
    if (!is_atom(ps))
        return fail(ps, -EINVAL, "expected a value at byte %zu", ps->tok_at);
    int rc = lit_add(ps->f, ps->word, ps->wlen);
    if (rc == -EINVAL)
        return fail(ps, rc, "more than %u values", ST_FILTER_LITS_MAX);
    if (rc == -E2BIG)
        return fail(ps, rc, "value at byte %zu is over %u bytes", ps->tok_at, ST_XATTR_VALUE_MAX);
    return rc ? rc : lex(ps);
}

/* "KEY in ( v, v, ... )": the current token is "in". */
static int parse_in(parser *ps, int node)
{
    st_fnode *n = &ps->f->nodes[node];
    n->kind = ST_FK_IN;
    n->lit = (uint32_t)ps->f->nlits;
    int rc = lex(ps);
    if (rc)
        return rc;
    if (ps->tok != TOK_LPAREN)
        return fail(ps, -EINVAL, "expected '(' after 'in' at byte %zu", ps->tok_at);
    for (;;) {
        if ((rc = lex(ps)) || (rc = take_lit(ps)))
            return rc;
        ps->f->nodes[node].nlit++;
        if (ps->tok == TOK_RPAREN)
            return lex(ps);
        if (ps->tok != TOK_COMMA)
            return fail(ps, -EINVAL, "expected ',' or ')' at byte %zu", ps->tok_at);
    }
}

/* A leaf or a parenthesized / negated expression. */
static int parse_unary(parser *ps, unsigned depth, int *out)
{
    if (depth > ST_FILTER_DEPTH_MAX)
        return fail(ps, -EINVAL, "nested deeper than %u at byte %zu", ST_FILTER_DEPTH_MAX,
                    ps->tok_at);
    int rc;
    if (ps->tok == TOK_LPAREN) {
        if ((rc = lex(ps)) || (rc = parse_or(ps, depth + 1, out)))
            return rc;
        if (ps->tok != TOK_RPAREN)
            return fail(ps, -EINVAL, "expected ')' at byte %zu", ps->tok_at);
        return lex(ps);
    }
    int node = node_add(ps->f, ST_FK_CMP);
    if (node < 0)
        return fail(ps, -EINVAL, "more than %u terms", ST_FILTER_NODES_MAX);
    *out = node;
    if (is_kw(ps, "not")) {
        ps->f->nodes[node].kind = ST_FK_NOT;
        int child;
        if ((rc = lex(ps)) || (rc = parse_unary(ps, depth + 1, &child)))
            return rc;
        node_adopt(ps->f, node, child);
        return 0;
    }
    if (is_kw(ps, "exists")) {
        ps->f->nodes[node].kind = ST_FK_EXISTS;
        if ((rc = lex(ps)))
            return rc;
        if (!is_atom(ps))
            return fail(ps, -EINVAL, "expected a key after 'exists' at byte %zu", ps->tok_at);
        if ((rc = take_key(ps, node)))
            return rc;
        return lex(ps);
    }
    if (!is_atom(ps))
        return fail(ps, -EINVAL, "expected a key at byte %zu", ps->tok_at);
    if ((rc = take_key(ps, node)) || (rc = lex(ps)))
        return rc;
    if (is_kw(ps, "in"))
        return parse_in(ps, node);
    if (ps->tok != TOK_OP)
        return fail(ps, -EINVAL, "expected an operator (= != < <= > >= in) at byte %zu",
                    ps->tok_at);
    ps->f->nodes[node].op = ps->op;
    ps->f->nodes[node].lit = (uint32_t)ps->f->nlits;
    ps->f->nodes[node].nlit = 1;
    if ((rc = lex(ps)))
        return rc;
    return take_lit(ps);
}

/* A run of operands joined by `joiner` ("and" also ","; or "or"); a run
 * of one is the operand itself. */
static int parse_run(parser *ps, unsigned depth, st_fkind kind, int *out)
{
    int first, rc;
    rc = kind == ST_FK_AND ? parse_unary(ps, depth, &first)
                           : parse_run(ps, depth, ST_FK_AND, &first);
    if (rc)
        return rc;
    *out = first;
    int run = -1;
    for (;;) {
        bool more =
            kind == ST_FK_AND ? (is_kw(ps, "and") || ps->tok == TOK_COMMA) : is_kw(ps, "or");
        if (!more)
            return 0;
        if (run < 0) {
            run = node_add(ps->f, kind);
            if (run < 0)
                return fail(ps, -EINVAL, "more than %u terms", ST_FILTER_NODES_MAX);
            node_adopt(ps->f, run, first);
            *out = run;
        }
        int next;
        if ((rc = lex(ps)))
            return rc;
        rc = kind == ST_FK_AND ? parse_unary(ps, depth, &next)
                               : parse_run(ps, depth, ST_FK_AND, &next);
        if (rc)
            return rc;
        node_adopt(ps->f, run, next);
    }
}

static int parse_or(parser *ps, unsigned depth, int *out)
{
    return parse_run(ps, depth, ST_FK_OR, out);
}

/* The old form "KEY=VALUE[,KEY=VALUE...]" (AND of equalities; a value is
 * everything up to the next comma, trimmed, and may hold spaces and '='),
 * tried when the text is not in the grammar. Keys must be bare words and
 * the text must hold none of ( ) " ' < > ! and no keyword as a word,
 * which only the grammar uses, so a broken expression is reported rather
 * than read as a strange value.
 * 0, or -1 when the text is not of this form either. */
static int parse_legacy(const char *s, size_t len, st_filter **out)
{
    eq_term terms[ST_FILTER_LITS_MAX];
    size_t n = 0, i = 0;
    for (size_t j = 0; j < len; j++) {
        if (strchr("()\"'<>!", s[j]) != NULL || s[j] == '\0')
            return -1;
        parser w = {.s = s, .len = len, .pos = j, .sbuf = VC_BUF_INIT};
        bool kw = (j == 0 || is_delim(s[j - 1])) && lex(&w) == 0 &&
                  (is_kw(&w, "and") || is_kw(&w, "or") || is_kw(&w, "not") || is_kw(&w, "in") ||
                   is_kw(&w, "exists"));
        vc_buf_release(&w.sbuf);
        if (kw)
            return -1;
    }
    int rc = 0;
    for (;;) {
        const char *comma = memchr(s + i, ',', len - i);
        size_t end = comma ? (size_t)(comma - s) : len;
        const char *eq = memchr(s + i, '=', end - i);
        if (!eq || n >= ST_FILTER_LITS_MAX) {
            rc = -1;
            break;
        }
        size_t k0 = i, k1 = (size_t)(eq - s), v0 = k1 + 1, v1 = end;
        while (k0 < k1 && is_ws(s[k0]))
            k0++;
        while (k1 > k0 && is_ws(s[k1 - 1]))
            k1--;
        while (v0 < v1 && is_ws(s[v0]))
            v0++;
        while (v1 > v0 && is_ws(s[v1 - 1]))
            v1--;
        bool bare = k0 < k1;
        for (size_t j = k0; j < k1; j++)
            bare &= !is_delim(s[j]);
        if (!bare) {
            rc = -1;
            break;
        }
        char *key = vc_malloc(k1 - k0 + 1);
        if (!key) {
            rc = -ENOMEM;
            break;
        }
        memcpy(key, s + k0, k1 - k0);
        key[k1 - k0] = '\0';
        terms[n++] = (eq_term){key, s + v0, v1 - v0};
        if (!comma)
            break;
        i = end + 1;
    }
    if (rc == 0) {
        rc = filter_from_terms(terms, n, out);
        if (rc && rc != -ENOMEM)
            rc = -1;
    }
    for (size_t j = 0; j < n; j++)
        free((char *)terms[j].key);
    return rc;
}

int st_filter_parse(const char *text, size_t len, st_filter **out, char *err, size_t errcap)
{
    *out = NULL;
    if (err && errcap)
        err[0] = '\0';
    if (!text && len)
        return -EINVAL;
    if (len > ST_FILTER_TEXT_MAX) {
        if (err && errcap)
            snprintf(err, errcap, "filter: over %u bytes", ST_FILTER_TEXT_MAX);
        return -E2BIG;
    }
    parser ps = {.s = text, .len = len, .err = err, .errcap = errcap, .sbuf = VC_BUF_INIT};
    int rc = lex(&ps);
    if (rc == 0 && ps.tok == TOK_END) {
        vc_buf_release(&ps.sbuf);
        return 0; /* empty or blank: no filter */
    }
    ps.f = filter_new();
    if (!ps.f) {
        vc_buf_release(&ps.sbuf);
        return -ENOMEM;
    }
    if (rc == 0)
        rc = parse_or(&ps, 0, &ps.f->root);
    if (rc == 0 && ps.tok != TOK_END)
        rc = fail(&ps, -EINVAL, "unexpected text at byte %zu", ps.tok_at);
    vc_buf_release(&ps.sbuf);
    if (rc == 0) {
        *out = ps.f;
        return 0;
    }
    st_filter_free(ps.f);
    if (rc == -EINVAL) {
        int lrc = parse_legacy(text, len, out);
        if (lrc == 0 && err && errcap)
            err[0] = '\0';
        if (lrc != -1)
            return lrc;
    }
    return rc;
}

bool st_fop_holds(st_fop op, int c)
{
    switch (op) {
    case ST_FOP_EQ:
        return c == 0;
    case ST_FOP_NE:
        return c != 0;
    case ST_FOP_LT:
        return c < 0;
    case ST_FOP_LE:
        return c <= 0;
    case ST_FOP_GT:
        return c > 0;
    default:
        return c >= 0;
    }
}
