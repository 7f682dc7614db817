/* Avro binary -> canonical JSON, for reading segments fast (sealtrail.archive.fast_segments).
 *
 * One job: turn each datum of a decompressed Avro block into the canonical JSON bytes
 * of docs/format.md ("Canonical JSON", "Mapping Avro values"): objects with keys sorted
 * by UTF-8 bytes, unions untagged, enums as symbols, bytes and fixed as lowercase hex,
 * logical types ignored. Python's canonical_json(fastavro-decoded record) is the
 * reference; tests/integration/native/test_fast_segments.py checks this against it.
 *
 * This module never decides that data is bad. Whenever it meets anything it does not
 * handle exactly (floats, invalid UTF-8, a lone surrogate, duplicate map keys, truncated
 * input, very deep nesting) it raises ValueError and the caller takes the Python path,
 * which names the problem. So a successful result is always the reference's result.
 *
 * The schema arrives "compiled" by Python as a list of node tuples (see
 * fast_segments._compile), children referred to by index so that recursive named types
 * work:
 *   (T_NULL,) (T_BOOL,) (T_LONG,) (T_STRING,) (T_BYTES,) (T_FIXED, size)
 *   (T_ENUM, (b'"SYM"', ...))        symbols already as JSON strings
 *   (T_ARRAY, item) (T_MAP, value)
 *   (T_RECORD, ((b'"name":', child), ...), (field index in key order, ...))
 *   (T_UNION, (branch, ...))
 * Node 0 is the top-level record.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { T_NULL, T_BOOL, T_LONG, T_STRING, T_BYTES, T_FIXED, T_ENUM, T_ARRAY, T_MAP, T_RECORD,
       T_UNION };

#define MAX_DEPTH 64

typedef struct Node {
    int type;
    Py_ssize_t count;        /* FIXED: size; ENUM: symbols; RECORD: fields; UNION: branches */
    struct Node **kids;      /* ARRAY/MAP: kids[0]; RECORD: fields in schema order; UNION */
    char **texts;            /* ENUM: "\"SYM\""; RECORD: "\"name\":" (schema order) */
    Py_ssize_t *text_lens;
    Py_ssize_t *order;       /* RECORD: schema indices in key order */
} Node;

typedef struct {
    Node *nodes;
    Py_ssize_t n;
} Program;

typedef struct {
    char *p;
    Py_ssize_t len, cap;
} Buf;

typedef struct {
    const unsigned char *p, *end;
} In;

typedef struct {
    Py_ssize_t start, len;
} Span;

/* What went wrong, for the ValueError (the GIL is held throughout, so one is enough). */
static const char *problem;

static int fail(const char *why) {
    problem = why;
    return -1;
}

/* Array items and map entries the current transcode() call may still read: each takes at
 * least one byte unless its type encodes to nothing (an array of nulls), so a block of n
 * bytes has at most n + ITEM_SLACK in honest data; beyond that the count lies. */
#define ITEM_SLACK 1024
static int64_t items_left;

static int take_items(int64_t count) {
    if (count > items_left)
        return fail("more items than the block can hold");
    items_left -= count;
    return 0;
}

/* ---------------------------------------------------------------- buffers */

static inline int reserve(Buf *b, Py_ssize_t extra) {
    if (b->len + extra <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = realloc(b->p, (size_t)cap);
    if (p == NULL)
        return fail("out of memory");
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int put(Buf *b, const char *s, Py_ssize_t n) {
    if (reserve(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

static inline int putc1(Buf *b, char c) {
    if (reserve(b, 1) < 0)
        return -1;
    b->p[b->len++] = c;
    return 0;
}

/* ---------------------------------------------------------------- reading */

static int read_long(In *in, int64_t *out) {
    uint64_t v = 0;
    int shift = 0;
    for (;;) {
        if (in->p >= in->end)
            return fail("truncated long");
        unsigned char c = *in->p++;
        if (shift == 63 && (c & 0x7e))
            return fail("long overflows 64 bits");
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            break;
        shift += 7;
        if (shift > 63)
            return fail("long longer than 10 bytes");
    }
    *out = (int64_t)((v >> 1) ^ (~(v & 1) + 1));
    return 0;
}

static int read_len(In *in, const unsigned char **start, Py_ssize_t *n) {
    int64_t len;
    if (read_long(in, &len) < 0)
        return -1;
    if (len < 0 || len > in->end - in->p)
        return fail("length out of range");
    *start = in->p;
    *n = (Py_ssize_t)len;
    in->p += len;
    return 0;
}

/* ---------------------------------------------------------------- writing values */

static int put_long(Buf *b, int64_t v) {
    char tmp[24], *end = tmp + sizeof tmp, *o = end;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--o = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--o = '-';
    return put(b, o, end - o);
}

static const char HEX[] = "0123456789abcdef";

static int put_hex(Buf *b, const unsigned char *s, Py_ssize_t n) {
    if (reserve(b, 2 * n + 2) < 0)
        return -1;
    char *o = b->p + b->len;
    *o++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        *o++ = HEX[s[i] >> 4];
        *o++ = HEX[s[i] & 15];
    }
    *o++ = '"';
    b->len = o - b->p;
    return 0;
}

/* Length of the valid UTF-8 sequence starting at s (not a surrogate), or 0. */
static int utf8_len(const unsigned char *s, const unsigned char *end) {
    unsigned char c = s[0];
    Py_ssize_t left = end - s;
#define CONT(i) (left > (i) && (s[i] & 0xc0) == 0x80)
    if (c >= 0xc2 && c <= 0xdf)
        return CONT(1) ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (!CONT(1) || !CONT(2))
            return 0;
        if (c == 0xe0 && s[1] < 0xa0)
            return 0; /* overlong */
        if (c == 0xed && s[1] >= 0xa0)
            return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (!CONT(1) || !CONT(2) || !CONT(3))
            return 0;
        if (c == 0xf0 && s[1] < 0x90)
            return 0; /* overlong */
        if (c == 0xf4 && s[1] >= 0x90)
            return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
#undef CONT
}

/* 1 for the bytes a string can copy as they are: printable ASCII but '"' and '\\'. */
static unsigned char PLAIN[256];

static void init_plain(void) {
    for (int c = 0x20; c < 0x80; c++)
        PLAIN[c] = c != '"' && c != '\\';
}

static int put_string(Buf *b, const unsigned char *s, Py_ssize_t n) {
    if (reserve(b, 6 * n + 2) < 0)
        return -1;
    char *o = b->p + b->len;
    const unsigned char *end = s + n;
    *o++ = '"';
    while (s < end) {
        const unsigned char *run = s;
        while (s < end && PLAIN[*s])
            s++;
        memcpy(o, run, (size_t)(s - run));
        o += s - run;
        if (s == end)
            break;
        unsigned char c = *s;
        if (c >= 0x80) {
            int k = utf8_len(s, end);
            if (k == 0)
                return fail("string is not valid UTF-8 (or holds a surrogate)");
            memcpy(o, s, (size_t)k);
            o += k;
            s += k;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\t': *o++ = 't'; break;
        case '\n': *o++ = 'n'; break;
        case '\f': *o++ = 'f'; break;
        case '\r': *o++ = 'r'; break;
        default:
            *o++ = 'u'; *o++ = '0'; *o++ = '0';
            *o++ = HEX[c >> 4]; *o++ = HEX[c & 15];
        }
        s++;
    }
    *o++ = '"';
    b->len = o - b->p;
    return 0;
}

/* ---------------------------------------------------------------- the transcoder */

static int value(const Node *node, In *in, Buf *out, Buf *scratch, int depth);

/* Copy the values written at out[base:] (one span each, in schema order) back in key
 * order: "{" key value, ... "}". Uses scratch (free again once this returns). */
static int emit_object(Buf *out, Buf *scratch, Py_ssize_t base, Py_ssize_t n,
                       const Span *keys, const Span *vals, const Py_ssize_t *order,
                       const char *const *fixed_keys, const Py_ssize_t *fixed_lens) {
    Py_ssize_t used = out->len - base;
    scratch->len = 0;
    if (put(scratch, out->p + base, used) < 0)
        return -1;
    out->len = base;
    if (putc1(out, '{') < 0)
        return -1;
    for (Py_ssize_t j = 0; j < n; j++) {
        Py_ssize_t i = order[j];
        if (j && putc1(out, ',') < 0)
            return -1;
        if (fixed_keys) {
            if (put(out, fixed_keys[i], fixed_lens[i]) < 0)
                return -1;
        } else {
            if (put(out, scratch->p + keys[i].start - base, keys[i].len) < 0 || putc1(out, ':') < 0)
                return -1;
        }
        if (put(out, scratch->p + vals[i].start - base, vals[i].len) < 0)
            return -1;
    }
    return putc1(out, '}');
}

static int record(const Node *node, In *in, Buf *out, Buf *scratch, int depth) {
    Py_ssize_t n = node->count, base = out->len;
    Span stack[64], *vals = n <= 64 ? stack : malloc(sizeof(Span) * (size_t)n);
    if (vals == NULL)
        return fail("out of memory");
    int rc = 0;
    for (Py_ssize_t i = 0; i < n && rc == 0; i++) {
        vals[i].start = out->len;
        rc = value(node->kids[i], in, out, scratch, depth + 1);
        vals[i].len = out->len - vals[i].start;
    }
    if (rc == 0)
        rc = emit_object(out, scratch, base, n, NULL, vals, node->order,
                         (const char *const *)node->texts, node->text_lens);
    if (vals != stack)
        free(vals);
    return rc;
}

typedef struct {
    const unsigned char *s;
    Py_ssize_t n;
} RawKey;

static const RawKey *sort_keys; /* the keys being sorted (the GIL is held throughout) */

/* Map keys in code point order: their raw UTF-8 bytes compared as unsigned bytes. */
static int cmp_keys(const void *a, const void *b) {
    const RawKey *x = &sort_keys[*(const Py_ssize_t *)a], *y = &sort_keys[*(const Py_ssize_t *)b];
    int c = memcmp(x->s, y->s, (size_t)(x->n < y->n ? x->n : y->n));
    if (c)
        return c;
    return x->n < y->n ? -1 : x->n > y->n ? 1 : 0;
}

static int map(const Node *node, In *in, Buf *out, Buf *scratch, int depth) {
    Py_ssize_t base = out->len, n = 0, cap = 0;
    Span *keys = NULL, *vals = NULL;
    RawKey *raw = NULL;
    Py_ssize_t *order = NULL;
    int rc = 0;
    for (;;) {
        int64_t count;
        if ((rc = read_long(in, &count)) < 0)
            break;
        if (count == 0)
            break;
        if (count < 0) {
            int64_t size;
            if ((rc = read_long(in, &size)) < 0)
                break;
            if (count == INT64_MIN) {
                rc = fail("map block count out of range");
                break;
            }
            count = -count;
        }
        if (count > in->end - in->p) { /* each entry takes at least one byte */
            rc = fail("map block count out of range");
            break;
        }
        if ((rc = take_items(count)) < 0)
            break;
        if (n + count > cap) {
            cap = (n + count) * 2;
            Span *k2 = realloc(keys, sizeof(Span) * (size_t)cap);
            if (k2) keys = k2;
            Span *v2 = realloc(vals, sizeof(Span) * (size_t)cap);
            if (v2) vals = v2;
            RawKey *r2 = realloc(raw, sizeof(RawKey) * (size_t)cap);
            if (r2) raw = r2;
            if (!k2 || !v2 || !r2) {
                rc = fail("out of memory");
                break;
            }
        }
        for (int64_t j = 0; j < count && rc == 0; j++, n++) {
            const unsigned char *s;
            Py_ssize_t len;
            keys[n].start = out->len;
            if ((rc = read_len(in, &s, &len)) < 0 || (rc = put_string(out, s, len)) < 0)
                break;
            raw[n].s = s;
            raw[n].n = len;
            keys[n].len = out->len - keys[n].start;
            vals[n].start = out->len;
            rc = value(node->kids[0], in, out, scratch, depth + 1);
            vals[n].len = out->len - vals[n].start;
        }
        if (rc < 0)
            break;
    }
    if (rc == 0 && n > 0) {
        order = malloc(sizeof(Py_ssize_t) * (size_t)n);
        if (order == NULL)
            rc = fail("out of memory");
        else {
            for (Py_ssize_t i = 0; i < n; i++)
                order[i] = i;
            sort_keys = raw;
            qsort(order, (size_t)n, sizeof(Py_ssize_t), cmp_keys);
            for (Py_ssize_t i = 1; i < n && rc == 0; i++)
                if (cmp_keys(&order[i - 1], &order[i]) == 0)
                    rc = fail("duplicate map key");
            if (rc == 0)
                rc = emit_object(out, scratch, base, n, keys, vals, order, NULL, NULL);
        }
    } else if (rc == 0) {
        rc = put(out, "{}", 2);
    }
    free(keys);
    free(vals);
    free(raw);
    free(order);
    return rc;
}

static int array(const Node *node, In *in, Buf *out, Buf *scratch, int depth) {
    Py_ssize_t n = 0;
    if (putc1(out, '[') < 0)
        return -1;
    for (;;) {
        int64_t count;
        if (read_long(in, &count) < 0)
            return -1;
        if (count == 0)
            break;
        if (count < 0) {
            int64_t size;
            if (read_long(in, &size) < 0)
                return -1;
            if (count == INT64_MIN)
                return fail("array block count out of range");
            count = -count;
        }
        /* (an array of nulls can claim more items than bytes: the Python path takes it) */
        if (count > in->end - in->p)
            return fail("array block count out of range");
        if (take_items(count) < 0)
            return -1;
        for (int64_t j = 0; j < count; j++, n++) {
            if (n && putc1(out, ',') < 0)
                return -1;
            if (value(node->kids[0], in, out, scratch, depth + 1) < 0)
                return -1;
        }
    }
    return putc1(out, ']');
}

static int value(const Node *node, In *in, Buf *out, Buf *scratch, int depth) {
    const unsigned char *s;
    Py_ssize_t len;
    int64_t v;
    if (depth > MAX_DEPTH)
        return fail("nested too deeply");
    switch (node->type) {
    case T_NULL:
        return put(out, "null", 4);
    case T_BOOL:
        if (in->p >= in->end || *in->p > 1)
            return fail("bad boolean");
        return *in->p++ ? put(out, "true", 4) : put(out, "false", 5);
    case T_LONG:
        return read_long(in, &v) < 0 ? -1 : put_long(out, v);
    case T_STRING:
        return read_len(in, &s, &len) < 0 ? -1 : put_string(out, s, len);
    case T_BYTES:
        return read_len(in, &s, &len) < 0 ? -1 : put_hex(out, s, len);
    case T_FIXED:
        if (node->count > in->end - in->p)
            return fail("truncated fixed");
        s = in->p;
        in->p += node->count;
        return put_hex(out, s, node->count);
    case T_ENUM:
        if (read_long(in, &v) < 0)
            return -1;
        if (v < 0 || v >= node->count)
            return fail("enum index out of range");
        return put(out, node->texts[v], node->text_lens[v]);
    case T_ARRAY:
        return array(node, in, out, scratch, depth);
    case T_MAP:
        return map(node, in, out, scratch, depth);
    case T_RECORD:
        return record(node, in, out, scratch, depth);
    case T_UNION:
        if (read_long(in, &v) < 0)
            return -1;
        if (v < 0 || v >= node->count)
            return fail("union branch out of range");
        return value(node->kids[v], in, out, scratch, depth + 1);
    }
    return fail("unknown node type");
}

/* The value at ``path`` (field indices from the top-level record down) as a Python
 * object (str, int or bytes; for a union, None when the null branch is present, else the
 * branch index), read again from where its top-level field starts. */
static PyObject *capture(const Node *top, const Py_ssize_t *path, Py_ssize_t depth,
                         const unsigned char *const *starts, const unsigned char *end,
                         Buf *skipped, Buf *scratch) {
    const Node *node = top->kids[path[0]];
    In in = {starts[path[0]], end};
    const unsigned char *s;
    Py_ssize_t len;
    int64_t v;
    for (Py_ssize_t d = 1; d < depth; d++) {
        if (node->type != T_RECORD || path[d] >= node->count)
            goto bad;
        for (Py_ssize_t i = 0; i < path[d]; i++) {
            skipped->len = 0;
            if (value(node->kids[i], &in, skipped, scratch, 1) < 0)
                goto bad;
        }
        node = node->kids[path[d]];
    }
    switch (node->type) {
    case T_UNION: /* which branch: None for null, else its index */
        if (read_long(&in, &v) < 0 || v < 0 || v >= node->count)
            break;
        if (node->kids[v]->type == T_NULL)
            Py_RETURN_NONE;
        return PyLong_FromLongLong(v);
    case T_LONG:
        if (read_long(&in, &v) < 0)
            break;
        return PyLong_FromLongLong(v);
    case T_STRING:
        if (read_len(&in, &s, &len) < 0)
            break;
        return PyUnicode_DecodeUTF8((const char *)s, len, "strict");
    case T_BYTES:
        if (read_len(&in, &s, &len) < 0)
            break;
        return PyBytes_FromStringAndSize((const char *)s, len);
    }
bad:
    PyErr_SetString(PyExc_ValueError, "not transcoded: cannot capture this field");
    return NULL;
}

/* ---------------------------------------------------------------- program compilation */

static void program_free(PyObject *capsule) {
    Program *prog = PyCapsule_GetPointer(capsule, "sealtrail.canonical_avro.program");
    if (prog == NULL)
        return;
    for (Py_ssize_t i = 0; i < prog->n; i++) {
        Node *nd = &prog->nodes[i];
        if (nd->texts)
            for (Py_ssize_t j = 0; j < nd->count; j++)
                free(nd->texts[j]);
        free(nd->texts);
        free(nd->text_lens);
        free(nd->kids);
        free(nd->order);
    }
    free(prog->nodes);
    free(prog);
}

static int compile_texts(Node *nd, PyObject *items, int pair) {
    Py_ssize_t n = PyTuple_Size(items);
    if (n < 0)
        return -1;
    nd->count = n;
    nd->texts = calloc((size_t)(n ? n : 1), sizeof(char *));
    nd->text_lens = calloc((size_t)(n ? n : 1), sizeof(Py_ssize_t));
    if (!nd->texts || !nd->text_lens) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *item = PyTuple_GET_ITEM(items, j);
        PyObject *text = pair ? PyTuple_GetItem(item, 0) : item;
        char *data;
        Py_ssize_t len;
        if (text == NULL || PyBytes_AsStringAndSize(text, &data, &len) < 0)
            return -1;
        nd->texts[j] = malloc((size_t)(len ? len : 1));
        if (nd->texts[j] == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(nd->texts[j], data, (size_t)len);
        nd->text_lens[j] = len;
    }
    return 0;
}

static Node *kid(Program *prog, PyObject *index) {
    Py_ssize_t i = PyLong_AsSsize_t(index);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (i < 0 || i >= prog->n) {
        PyErr_SetString(PyExc_ValueError, "node index out of range");
        return NULL;
    }
    return &prog->nodes[i];
}

static int compile_node(Program *prog, Node *nd, PyObject *spec) {
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) < 1) {
        PyErr_SetString(PyExc_TypeError, "a node is a non-empty tuple");
        return -1;
    }
    long type = PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
    if (type == -1 && PyErr_Occurred())
        return -1;
    nd->type = (int)type;
    Py_ssize_t size = PyTuple_GET_SIZE(spec);
    switch (type) {
    case T_NULL: case T_BOOL: case T_LONG: case T_STRING: case T_BYTES:
        return 0;
    case T_FIXED:
        if (size != 2)
            break;
        nd->count = PyLong_AsSsize_t(PyTuple_GET_ITEM(spec, 1));
        if (nd->count >= 0)
            return 0;
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "a fixed size is not negative");
        return -1;
    case T_ENUM:
        if (size != 2 || !PyTuple_Check(PyTuple_GET_ITEM(spec, 1)))
            break;
        return compile_texts(nd, PyTuple_GET_ITEM(spec, 1), 0);
    case T_ARRAY: case T_MAP:
        if (size != 2)
            break;
        nd->kids = malloc(sizeof(Node *));
        if (nd->kids == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        nd->kids[0] = kid(prog, PyTuple_GET_ITEM(spec, 1));
        return nd->kids[0] ? 0 : -1;
    case T_UNION: {
        if (size != 2 || !PyTuple_Check(PyTuple_GET_ITEM(spec, 1)))
            break;
        PyObject *branches = PyTuple_GET_ITEM(spec, 1);
        nd->count = PyTuple_GET_SIZE(branches);
        nd->kids = calloc((size_t)(nd->count ? nd->count : 1), sizeof(Node *));
        if (nd->kids == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t j = 0; j < nd->count; j++)
            if ((nd->kids[j] = kid(prog, PyTuple_GET_ITEM(branches, j))) == NULL)
                return -1;
        return 0;
    }
    case T_RECORD: {
        if (size != 3 || !PyTuple_Check(PyTuple_GET_ITEM(spec, 1))
                || !PyTuple_Check(PyTuple_GET_ITEM(spec, 2)))
            break;
        PyObject *fields = PyTuple_GET_ITEM(spec, 1), *order = PyTuple_GET_ITEM(spec, 2);
        if (compile_texts(nd, fields, 1) < 0)
            return -1;
        if (PyTuple_GET_SIZE(order) != nd->count) {
            PyErr_SetString(PyExc_ValueError, "record order has the wrong length");
            return -1;
        }
        Py_ssize_t n = nd->count ? nd->count : 1;
        nd->kids = calloc((size_t)n, sizeof(Node *));
        nd->order = calloc((size_t)n, sizeof(Py_ssize_t));
        if (!nd->kids || !nd->order) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t j = 0; j < nd->count; j++) {
            PyObject *field = PyTuple_GET_ITEM(fields, j);
            if (!PyTuple_Check(field) || PyTuple_GET_SIZE(field) != 2) {
                PyErr_SetString(PyExc_TypeError, "a record field is (key, node)");
                return -1;
            }
            if ((nd->kids[j] = kid(prog, PyTuple_GET_ITEM(field, 1))) == NULL)
                return -1;
            Py_ssize_t at = PyLong_AsSsize_t(PyTuple_GET_ITEM(order, j));
            if (at < 0 || at >= nd->count) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_ValueError, "record order index out of range");
                return -1;
            }
            nd->order[j] = at;
        }
        return 0;
    }
    }
    PyErr_Format(PyExc_ValueError, "malformed node of type %ld", type);
    return -1;
}

static PyObject *compile(PyObject *self, PyObject *arg) {
    if (!PyList_Check(arg) || PyList_GET_SIZE(arg) < 1) {
        PyErr_SetString(PyExc_TypeError, "compile() takes a non-empty list of nodes");
        return NULL;
    }
    Program *prog = calloc(1, sizeof(Program));
    if (prog == NULL)
        return PyErr_NoMemory();
    prog->n = PyList_GET_SIZE(arg);
    prog->nodes = calloc((size_t)prog->n, sizeof(Node));
    PyObject *capsule = PyCapsule_New(prog, "sealtrail.canonical_avro.program", program_free);
    if (prog->nodes == NULL || capsule == NULL) {
        if (capsule == NULL) {
            free(prog->nodes);
            free(prog);
        }
        Py_XDECREF(capsule);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < prog->n; i++)
        if (compile_node(prog, &prog->nodes[i], PyList_GET_ITEM(arg, i)) < 0) {
            Py_DECREF(capsule);
            return NULL;
        }
    if (prog->nodes[0].type != T_RECORD) {
        Py_DECREF(capsule);
        PyErr_SetString(PyExc_ValueError, "node 0 must be a record");
        return NULL;
    }
    return capsule;
}

/* ---------------------------------------------------------------- entry point */

/* One top-level record as "{...}" into dst: the fields in key order, their values taken
 * from the spans of ``vals`` in ``src``, leaving out those marked in ``skip`` (if any). */
static int top_object(Buf *dst, const Node *top, const Buf *src, const Span *vals,
                      const char *skip) {
    int first = 1;
    if (putc1(dst, '{') < 0)
        return -1;
    for (Py_ssize_t j = 0; j < top->count; j++) {
        Py_ssize_t i = top->order[j];
        if (skip && skip[i])
            continue;
        if ((!first && putc1(dst, ',') < 0) || put(dst, top->texts[i], top->text_lens[i]) < 0
                || put(dst, src->p + vals[i].start, vals[i].len) < 0)
            return -1;
        first = 0;
    }
    return putc1(dst, '}');
}

static int index_list(PyObject *tuple, Py_ssize_t limit, Py_ssize_t *into) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tuple); i++) {
        Py_ssize_t at = PyLong_AsSsize_t(PyTuple_GET_ITEM(tuple, i));
        if (at < 0 || at >= limit) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "field index out of range");
            return -1;
        }
        into[i] = at;
    }
    return 0;
}

/* transcode(program, block, count, seal, captures) -> list of tuples
 *   (record_json, body_json, *captured)
 * record_json: the whole top-level record; body_json: the record without the fields whose
 * schema indices are in ``seal``; captured: the values at the field-index paths in
 * ``captures`` (str, int, bytes or union fields, e.g. (8, 2) for source.offset). ValueError when the block is not exactly ``count``
 * records this module can transcode. */
static PyObject *transcode(PyObject *self, PyObject *args) {
    PyObject *capsule, *seal, *captures;
    Py_buffer block;
    Py_ssize_t count;
    if (!PyArg_ParseTuple(args, "Oy*nO!O!", &capsule, &block, &count, &PyTuple_Type, &seal,
                          &PyTuple_Type, &captures))
        return NULL;
    PyObject *rows = NULL;
    Buf fields = {0}, scratch = {0}, full = {0}, body = {0}, skipped = {0};
    Program *prog = PyCapsule_GetPointer(capsule, "sealtrail.canonical_avro.program");
    const Node *top = prog ? &prog->nodes[0] : NULL;
    Py_ssize_t nf = top ? top->count : 0, ncap = PyTuple_GET_SIZE(captures);
    Py_ssize_t nseal = PyTuple_GET_SIZE(seal);
    Span *vals = calloc((size_t)nf + 1, sizeof(Span));
    const unsigned char **starts = calloc((size_t)nf + 1, sizeof(char *));
    char *skip = calloc((size_t)nf + 1, 1);
    Py_ssize_t *paths = calloc((size_t)ncap * 8 + 1, sizeof(Py_ssize_t));
    Py_ssize_t *depths = calloc((size_t)ncap + 1, sizeof(Py_ssize_t));
    Py_ssize_t *seal_at = calloc((size_t)nseal + 1, sizeof(Py_ssize_t));
    if (prog == NULL)
        goto done;
    if (!vals || !starts || !skip || !paths || !depths || !seal_at) {
        PyErr_NoMemory();
        goto done;
    }
    if (index_list(seal, nf, seal_at) < 0)
        goto done;
    for (Py_ssize_t c = 0; c < ncap; c++) {
        PyObject *path = PyTuple_GET_ITEM(captures, c);
        if (!PyTuple_Check(path) || PyTuple_GET_SIZE(path) < 1 || PyTuple_GET_SIZE(path) > 8) {
            PyErr_SetString(PyExc_TypeError, "a capture is a tuple of 1 to 8 field indices");
            goto done;
        }
        depths[c] = PyTuple_GET_SIZE(path);
        if (index_list(path, PY_SSIZE_T_MAX, paths + 8 * c) < 0 || paths[8 * c] >= nf) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "field index out of range");
            goto done;
        }
    }
    for (Py_ssize_t i = 0; i < nseal; i++)
        skip[seal_at[i]] = 1;
    if (count < 0 || count > block.len) { /* a record takes at least one byte */
        PyErr_SetString(PyExc_ValueError, "not transcoded: record count out of range");
        goto done;
    }
    rows = PyList_New(count);
    if (rows == NULL)
        goto done;
    In in = {block.buf, (const unsigned char *)block.buf + block.len};
    problem = NULL;
    items_left = (int64_t)block.len + ITEM_SLACK;
    int rc = 0;
    for (Py_ssize_t r = 0; r < count && rc == 0; r++) {
        fields.len = full.len = body.len = 0;
        for (Py_ssize_t i = 0; i < nf && rc == 0; i++) {
            starts[i] = in.p;
            vals[i].start = fields.len;
            rc = value(top->kids[i], &in, &fields, &scratch, 1);
            vals[i].len = fields.len - vals[i].start;
        }
        if (rc == 0)
            rc = top_object(&full, top, &fields, vals, NULL);
        if (rc == 0)
            rc = top_object(&body, top, &fields, vals, skip);
        if (rc < 0)
            break;
        PyObject *row = PyTuple_New(2 + ncap);
        if (row == NULL) {
            rc = -2;
            break;
        }
        PyList_SET_ITEM(rows, r, row); /* a partly built row is freed with the list */
        PyObject *item = PyBytes_FromStringAndSize(full.p, full.len);
        if (item == NULL) {
            rc = -2;
            break;
        }
        PyTuple_SET_ITEM(row, 0, item);
        if ((item = PyBytes_FromStringAndSize(body.p, body.len)) == NULL) {
            rc = -2;
            break;
        }
        PyTuple_SET_ITEM(row, 1, item);
        for (Py_ssize_t c = 0; c < ncap; c++) {
            item = capture(top, paths + 8 * c, depths[c], starts, in.end, &skipped, &scratch);
            if (item == NULL) {
                rc = -2;
                break;
            }
            PyTuple_SET_ITEM(row, 2 + c, item);
        }
    }
    if (rc == 0 && in.p != in.end)
        rc = fail("bytes left over after the last record");
    if (rc == -1)
        PyErr_Format(PyExc_ValueError, "not transcoded: %s", problem ? problem : "error");
    if (rc != 0)
        Py_CLEAR(rows);
done:
    PyBuffer_Release(&block);
    free(fields.p);
    free(scratch.p);
    free(full.p);
    free(body.p);
    free(vals);
    free(starts);
    free(skip);
    free(skipped.p);
    free(paths);
    free(depths);
    free(seal_at);
    return rows;
}

static PyMethodDef methods[] = {
    {"compile", compile, METH_O, "Compile a schema program (a list of node tuples)."},
    {"transcode", transcode, METH_VARARGS,
     "transcode(program, block, count, seal, captures) -> [(record_json, body_json, *captured)]"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_canonical_avro",
    .m_doc = "Avro binary to canonical JSON, for reading segments fast.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__canonical_avro(void) {
    init_plain();
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    PyModule_AddIntConstant(m, "T_NULL", T_NULL);
    PyModule_AddIntConstant(m, "T_BOOL", T_BOOL);
    PyModule_AddIntConstant(m, "T_LONG", T_LONG);
    PyModule_AddIntConstant(m, "T_STRING", T_STRING);
    PyModule_AddIntConstant(m, "T_BYTES", T_BYTES);
    PyModule_AddIntConstant(m, "T_FIXED", T_FIXED);
    PyModule_AddIntConstant(m, "T_ENUM", T_ENUM);
    PyModule_AddIntConstant(m, "T_ARRAY", T_ARRAY);
    PyModule_AddIntConstant(m, "T_MAP", T_MAP);
    PyModule_AddIntConstant(m, "T_RECORD", T_RECORD);
    PyModule_AddIntConstant(m, "T_UNION", T_UNION);
    return m;
}
