/* Canonical JSON of Python values, natively (sealtrail.core.canonical).
 *
 * One job: the bytes of docs/format.md "Canonical JSON" for a value made of exactly
 * dict (str keys), list, tuple, str, int, bool, bytes and None: what
 * json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":")) writes,
 * encoded as UTF-8, with bytes as lowercase hex strings. canonical.py's Python encoder
 * is the reference; tests/integration/native/test_canonical_native.py holds the two to the same bytes.
 *
 * This module never decides that a value is bad. Whenever it meets anything else (a
 * float, a subclass of a type above, a non-string key, a lone surrogate, nesting deeper
 * than MAX_DEPTH, which also stops a circular value) it raises ValueError and the caller
 * takes the Python path, which gives the answer or names the problem. So a successful
 * result is always the reference's result.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 100
#define SMALL_DICT 32

typedef struct {
    char *p;
    Py_ssize_t len, cap;
} Buf;

/* Reused between calls (the GIL is held throughout); shrunk when a huge value grew it. */
static Buf out;

static int no(void) {
    return -1;
}

static int reserve(Buf *b, Py_ssize_t extra) {
    if (b->len + extra <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = realloc(b->p, (size_t)cap);
    if (p == NULL)
        return no();
    b->p = p;
    b->cap = cap;
    return 0;
}

static int put(Buf *b, const char *s, Py_ssize_t n) {
    if (reserve(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

static const char HEX[] = "0123456789abcdef";

/* 1 for the bytes a string copies as they are: all but '"', '\\' and controls. Bytes of
 * a multi-byte UTF-8 sequence are copied as they are: PyUnicode_AsUTF8AndSize only
 * returns valid UTF-8 (it refuses lone surrogates). */
static unsigned char PLAIN[256];
static const uint64_t ONES = 0x0101010101010101ULL;

static int put_string(Buf *b, const char *text, Py_ssize_t n) {
    if (reserve(b, 6 * n + 2) < 0)
        return -1;
    const unsigned char *s = (const unsigned char *)text, *end = s + n;
    char *o = b->p + b->len;
    *o++ = '"';
    while (s < end) {
        const unsigned char *run = s;
        /* eight bytes at a time while none is below 0x20, '"' or '\\' */
        while (end - s >= 8) {
            uint64_t x;
            memcpy(&x, s, 8);
            uint64_t q = x ^ (ONES * '"'), bs = x ^ (ONES * '\\');
            if (((x - ONES * 0x20) | (q - ONES) | (bs - ONES)) & ~x & ~q & ~bs & (ONES * 0x80)) {
                break;
            }
            s += 8;
        }
        while (s < end && PLAIN[*s])
            s++;
        memcpy(o, run, (size_t)(s - run));
        o += s - run;
        if (s == end)
            break;
        unsigned char c = *s++;
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
    }
    *o++ = '"';
    b->len = o - b->p;
    return 0;
}

static int put_str(Buf *b, PyObject *v) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(v, &n);
    if (s == NULL)
        return -1; /* a lone surrogate: the Python path raises UnicodeEncodeError */
    return put_string(b, s, n);
}

static int put_int(Buf *b, PyObject *v) {
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow) { /* beyond 64 bits: int's own decimal text, as json writes it */
        PyObject *text = PyLong_Type.tp_repr(v);
        if (text == NULL)
            return -1;
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(text, &n);
        int rc = s == NULL ? -1 : put(b, s, n);
        Py_DECREF(text);
        return rc;
    }
    if (x == -1 && PyErr_Occurred())
        return -1;
    char tmp[24], *end = tmp + sizeof tmp, *o = end;
    unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
    do {
        *--o = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (x < 0)
        *--o = '-';
    return put(b, o, end - o);
}

static int put_hex(Buf *b, PyObject *v) {
    Py_ssize_t n = PyBytes_GET_SIZE(v);
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(v);
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

typedef struct {
    const char *s;
    Py_ssize_t n;
    PyObject *value;
} Member;

/* Keys in code point order: their UTF-8 bytes compared as unsigned bytes. */
static int cmp_members(const void *a, const void *b) {
    const Member *x = a, *y = b;
    int c = memcmp(x->s, y->s, (size_t)(x->n < y->n ? x->n : y->n));
    if (c)
        return c;
    return x->n < y->n ? -1 : x->n > y->n;
}

static int value(Buf *b, PyObject *v, int depth);

static int object(Buf *b, PyObject *v, int depth) {
    Py_ssize_t n = PyDict_GET_SIZE(v), pos = 0, i = 0;
    if (n == 0)
        return put(b, "{}", 2);
    Member small[SMALL_DICT], *members = n <= SMALL_DICT ? small : malloc(sizeof(Member) * (size_t)n);
    if (members == NULL)
        return no();
    PyObject *key, *item;
    int rc = 0;
    while (PyDict_Next(v, &pos, &key, &item)) {
        if (i >= n || !PyUnicode_CheckExact(key)) {
            rc = -1;
            break;
        }
        members[i].s = PyUnicode_AsUTF8AndSize(key, &members[i].n);
        if (members[i].s == NULL) {
            rc = -1;
            break;
        }
        members[i++].value = item;
    }
    if (rc == 0 && i == n) {
        if (n > SMALL_DICT)
            qsort(members, (size_t)n, sizeof(Member), cmp_members);
        else /* insertion sort: a few keys, usually nearly in order already */
            for (Py_ssize_t j = 1; j < n; j++) {
                Member m = members[j];
                Py_ssize_t k = j;
                for (; k > 0 && cmp_members(&members[k - 1], &m) > 0; k--)
                    members[k] = members[k - 1];
                members[k] = m;
            }
        rc = put(b, "{", 1);
        for (i = 0; i < n && rc == 0; i++) {
            if ((i && put(b, ",", 1) < 0) || put_string(b, members[i].s, members[i].n) < 0
                    || put(b, ":", 1) < 0 || value(b, members[i].value, depth + 1) < 0)
                rc = -1;
        }
        if (rc == 0)
            rc = put(b, "}", 1);
    } else {
        rc = -1;
    }
    if (members != small)
        free(members);
    return rc;
}

static int array(Buf *b, PyObject *v, int depth) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
    PyObject **items = PySequence_Fast_ITEMS(v);
    if (put(b, "[", 1) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++)
        if ((i && put(b, ",", 1) < 0) || value(b, items[i], depth + 1) < 0)
            return -1;
    return put(b, "]", 1);
}

static int value(Buf *b, PyObject *v, int depth) {
    if (depth > MAX_DEPTH)
        return no();
    PyTypeObject *t = Py_TYPE(v);
    if (t == &PyUnicode_Type)
        return put_str(b, v);
    if (t == &PyLong_Type)
        return put_int(b, v);
    if (v == Py_None)
        return put(b, "null", 4);
    if (t == &PyDict_Type)
        return object(b, v, depth);
    if (t == &PyBytes_Type)
        return put_hex(b, v);
    if (t == &PyList_Type || t == &PyTuple_Type)
        return array(b, v, depth);
    if (v == Py_True)
        return put(b, "true", 4);
    if (v == Py_False)
        return put(b, "false", 5);
    return no(); /* floats, subclasses, anything else: the Python path decides */
}

/* canonical_json(value) -> bytes; ValueError when the Python path must decide. */
static PyObject *canonical_json(PyObject *self, PyObject *v) {
    out.len = 0;
    if (value(&out, v, 0) < 0) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "not encoded natively: the Python path decides");
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize(out.p, out.len);
    if (out.cap > (1 << 20)) { /* do not keep a huge buffer for ever */
        free(out.p);
        out.p = NULL;
        out.cap = 0;
    }
    return result;
}

static PyMethodDef methods[] = {
    {"canonical_json", canonical_json, METH_O,
     "canonical_json(value) -> bytes; ValueError when the Python path must decide."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_canonical_native",
    .m_doc = "Canonical JSON of Python values (docs/format.md), natively.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__canonical_native(void) {
    for (int c = 0x20; c < 256; c++)
        PLAIN[c] = c != '"' && c != '\\';
    return PyModule_Create(&module);
}
