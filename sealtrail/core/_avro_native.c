/* Avro binary <-> Python values for a compiled schema (sealtrail.core.avro_program).
 *
 * Two jobs, both byte for byte and value for value what fastavro does:
 *   encode(program, value) -> bytes          fastavro.schemaless_writer's bytes
 *   decode(program, data) -> (value, used)   fastavro.schemaless_reader's value (dicts
 *                                            in the same key order), and the bytes used
 * The program comes from avro_program.py, which compiles a schema (to encode) or a
 * writer schema resolved to a reader schema (to decode) into node tuples, children
 * referred to by index:
 *   (K_NULL,) (K_BOOL,) (K_INT,) (K_LONG,) (K_FLOAT,) (K_DOUBLE,) (K_STRING,) (K_BYTES,)
 *   (K_FIXED, size) (K_ENUM, (symbol, ...), {symbol: index}) (K_ARRAY, item) (K_MAP, value)
 *   (K_RECORD, ((key or None, child), ...), ((key, default, copy?), ...))
 *   (K_UNION, (branch, ...))
 * A record's fields are in the order they are written; a None key reads a field and
 * drops it (the reader does not have it); the defaults are added after them (fields the
 * writer does not have), deep-copied when ``copy?``. Node 0 is the top-level type.
 *
 * Like the segment reader, this module never decides that data is bad. Whenever it meets
 * anything it does not take exactly (a subclass or a type the schema does not name, a
 * missing key, a number out of range, invalid UTF-8, a union it cannot choose a branch of
 * by type alone, truncated input) it raises ValueError and the caller takes fastavro,
 * which gives the answer or the error. tests/integration/native/test_avro_native.py compares the two.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { K_NULL, K_BOOL, K_INT, K_LONG, K_FLOAT, K_DOUBLE, K_STRING, K_BYTES, K_FIXED, K_ENUM,
       K_ARRAY, K_MAP, K_RECORD, K_UNION, K_KINDS };

/* Python classes of values, to choose a union branch by when encoding. */
enum { C_NONE, C_BOOL, C_INT, C_FLOAT, C_STR, C_BYTES, C_DICT, C_LIST, C_CLASSES };

static const int CLASS_OF[K_KINDS] = {
    [K_NULL] = C_NONE, [K_BOOL] = C_BOOL, [K_INT] = C_INT, [K_LONG] = C_INT,
    [K_FLOAT] = C_FLOAT, [K_DOUBLE] = C_FLOAT, [K_STRING] = C_STR, [K_ENUM] = C_STR,
    [K_BYTES] = C_BYTES, [K_FIXED] = C_BYTES, [K_RECORD] = C_DICT, [K_MAP] = C_DICT,
    [K_ARRAY] = C_LIST, [K_UNION] = C_CLASSES,
};

#define MAX_DEPTH 64

typedef struct Node {
    int kind;
    Py_ssize_t count;          /* FIXED: size; ENUM: symbols; RECORD: fields; UNION: branches */
    struct Node **kids;        /* ARRAY/MAP: kids[0]; RECORD: per field; UNION: per branch */
    PyObject **keys;           /* RECORD: per field, its key, or NULL: read and dropped */
    PyObject *symbols;         /* ENUM: tuple of str */
    PyObject *index;           /* ENUM: dict str -> int */
    PyObject *defaults;        /* RECORD: tuple of (key, default, copy?) */
    int branch[C_CLASSES];     /* UNION: the branch for values of each class; -1 none, -2 several */
    int empty;                 /* 1 when a value takes no bytes at all (null, fixed(0), ...) */
} Node;

typedef struct {
    Node *nodes;
    Py_ssize_t n;
    PyObject *deepcopy;
} Program;

#define CAPSULE "sealtrail.avro_native.program"

/* ---------------------------------------------------------------- compiling */

static void program_free(Program *prog) {
    for (Py_ssize_t i = 0; i < prog->n; i++) {
        Node *node = &prog->nodes[i];
        if (node->keys)
            for (Py_ssize_t j = 0; j < node->count; j++)
                Py_XDECREF(node->keys[j]);
        free(node->keys);
        free(node->kids);
        Py_XDECREF(node->symbols);
        Py_XDECREF(node->index);
        Py_XDECREF(node->defaults);
    }
    free(prog->nodes);
    Py_XDECREF(prog->deepcopy);
    free(prog);
}

static void capsule_free(PyObject *capsule) {
    program_free(PyCapsule_GetPointer(capsule, CAPSULE));
}

static Node *kid(Program *prog, PyObject *index) {
    Py_ssize_t at = PyLong_AsSsize_t(index);
    if (at < 0 || at >= prog->n) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "node index out of range");
        return NULL;
    }
    return &prog->nodes[at];
}

static int compile_record(Program *prog, Node *node, PyObject *spec) {
    PyObject *fields, *defaults;
    if (!PyArg_ParseTuple(spec, "iO!O!", &node->kind, &PyTuple_Type, &fields,
                          &PyTuple_Type, &defaults))
        return -1;
    node->count = PyTuple_GET_SIZE(fields);
    node->kids = calloc((size_t)node->count + 1, sizeof(Node *));
    node->keys = calloc((size_t)node->count + 1, sizeof(PyObject *));
    if (!node->kids || !node->keys) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t j = 0; j < node->count; j++) {
        PyObject *key, *child;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(fields, j), "OO", &key, &child))
            return -1;
        if (key != Py_None && !PyUnicode_CheckExact(key)) {
            PyErr_SetString(PyExc_TypeError, "a field key is a str or None");
            return -1;
        }
        if ((node->kids[j] = kid(prog, child)) == NULL)
            return -1;
        if (key != Py_None) {
            Py_INCREF(key);
            node->keys[j] = key;
        }
    }
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(defaults); j++) {
        PyObject *d = PyTuple_GET_ITEM(defaults, j);
        if (!PyTuple_Check(d) || PyTuple_GET_SIZE(d) != 3
                || !PyUnicode_CheckExact(PyTuple_GET_ITEM(d, 0))) {
            PyErr_SetString(PyExc_TypeError, "a default is (key, value, copy)");
            return -1;
        }
    }
    Py_INCREF(defaults);
    node->defaults = defaults;
    return 0;
}

static int compile_union(Program *prog, Node *node, PyObject *spec) {
    PyObject *branches;
    if (!PyArg_ParseTuple(spec, "iO!", &node->kind, &PyTuple_Type, &branches))
        return -1;
    node->count = PyTuple_GET_SIZE(branches);
    node->kids = calloc((size_t)node->count + 1, sizeof(Node *));
    if (node->kids == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t j = 0; j < node->count; j++)
        if ((node->kids[j] = kid(prog, PyTuple_GET_ITEM(branches, j))) == NULL)
            return -1;
    return 0;
}

/* Once every node is compiled: which branch of a union takes values of each class. */
static int choose_branches(Node *node) {
    for (int c = 0; c < C_CLASSES; c++)
        node->branch[c] = -1;
    for (Py_ssize_t j = 0; j < node->count; j++) {
        int c = CLASS_OF[node->kids[j]->kind];
        if (c == C_CLASSES) {
            PyErr_SetString(PyExc_ValueError, "a union inside a union");
            return -1;
        }
        node->branch[c] = node->branch[c] == -1 ? (int)j : -2; /* several: never chosen */
    }
    /* fastavro writes an int in a float or double branch when one comes first */
    if (node->branch[C_FLOAT] != -1 && node->branch[C_INT] >= 0)
        node->branch[C_INT] = -2;
    return 0;
}

static int compile_node(Program *prog, Node *node, PyObject *spec) {
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) < 1) {
        PyErr_SetString(PyExc_TypeError, "a node is a tuple");
        return -1;
    }
    int kind = (int)PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
    PyObject *a;
    switch (kind) {
    case K_NULL: case K_BOOL: case K_INT: case K_LONG: case K_FLOAT: case K_DOUBLE:
    case K_STRING: case K_BYTES:
        node->kind = kind;
        return 0;
    case K_FIXED:
        return PyArg_ParseTuple(spec, "in", &node->kind, &node->count) ? 0 : -1;
    case K_ENUM: {
        PyObject *symbols, *index;
        if (!PyArg_ParseTuple(spec, "iO!O!", &node->kind, &PyTuple_Type, &symbols,
                              &PyDict_Type, &index))
            return -1;
        node->count = PyTuple_GET_SIZE(symbols);
        Py_INCREF(symbols);
        Py_INCREF(index);
        node->symbols = symbols;
        node->index = index;
        return 0;
    }
    case K_ARRAY: case K_MAP:
        if (!PyArg_ParseTuple(spec, "iO", &node->kind, &a))
            return -1;
        node->kids = calloc(1, sizeof(Node *));
        if (node->kids == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        return (node->kids[0] = kid(prog, a)) == NULL ? -1 : 0;
    case K_RECORD:
        return compile_record(prog, node, spec);
    case K_UNION:
        return compile_union(prog, node, spec);
    }
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "unknown node kind");
    return -1;
}

/* Whether values of ``node`` take no bytes (its children's flags already set). */
static int is_empty(const Node *node) {
    if (node->kind == K_NULL || (node->kind == K_FIXED && node->count == 0))
        return 1;
    if (node->kind != K_RECORD)
        return 0;
    for (Py_ssize_t j = 0; j < node->count; j++)
        if (!node->kids[j]->empty)
            return 0;
    return 1;
}

/* compile(nodes, deepcopy) -> program */
static PyObject *compile(PyObject *self, PyObject *args) {
    PyObject *nodes, *deepcopy;
    if (!PyArg_ParseTuple(args, "O!O", &PyList_Type, &nodes, &deepcopy))
        return NULL;
    Program *prog = calloc(1, sizeof(Program));
    if (prog == NULL)
        return PyErr_NoMemory();
    prog->n = PyList_GET_SIZE(nodes);
    prog->nodes = calloc((size_t)prog->n + 1, sizeof(Node));
    Py_INCREF(deepcopy);
    prog->deepcopy = deepcopy;
    if (prog->nodes == NULL || prog->n == 0) {
        int empty = prog->nodes != NULL;
        program_free(prog);
        return empty ? PyErr_Format(PyExc_ValueError, "no nodes") : PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < prog->n; i++) {
        if (compile_node(prog, &prog->nodes[i], PyList_GET_ITEM(nodes, i)) < 0) {
            program_free(prog);
            return NULL;
        }
    }
    for (Py_ssize_t i = prog->n - 1; i >= 0; i--) /* children come after their parents */
        prog->nodes[i].empty = is_empty(&prog->nodes[i]);
    for (Py_ssize_t i = 0; i < prog->n; i++) {
        if (prog->nodes[i].kind == K_UNION && choose_branches(&prog->nodes[i]) < 0) {
            program_free(prog);
            return NULL;
        }
    }
    PyObject *capsule = PyCapsule_New(prog, CAPSULE, capsule_free);
    if (capsule == NULL)
        program_free(prog);
    return capsule;
}

/* ---------------------------------------------------------------- encoding */

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

/* Avro long: zig-zag, then a little-endian base-128 varint. */
static int put_long(Buf *b, int64_t v) {
    if (reserve(b, 10) < 0)
        return -1;
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    char *o = b->p + b->len;
    while (z > 0x7f) {
        *o++ = (char)((z & 0x7f) | 0x80);
        z >>= 7;
    }
    *o++ = (char)z;
    b->len = o - b->p;
    return 0;
}

static int put_bytes(Buf *b, const char *s, Py_ssize_t n) {
    return put_long(b, n) < 0 ? -1 : put(b, s, n);
}

static int class_of(PyObject *v) {
    PyTypeObject *t = Py_TYPE(v);
    if (v == Py_None) return C_NONE;
    if (t == &PyUnicode_Type) return C_STR;
    if (t == &PyDict_Type) return C_DICT;
    if (t == &PyLong_Type) return C_INT;
    if (t == &PyBytes_Type) return C_BYTES;
    if (t == &PyList_Type) return C_LIST;
    if (t == &PyBool_Type) return C_BOOL;
    if (t == &PyFloat_Type) return C_FLOAT;
    return C_CLASSES;
}

static int enc(const Node *node, PyObject *v, Buf *b, int depth);

static int enc_record(const Node *node, PyObject *v, Buf *b, int depth) {
    if (!PyDict_CheckExact(v))
        return no();
    for (Py_ssize_t j = 0; j < node->count; j++) {
        PyObject *item = PyDict_GetItemWithError(v, node->keys[j]);
        if (item == NULL || enc(node->kids[j], item, b, depth + 1) < 0)
            return -1; /* a missing key too: fastavro writes the field's default */
    }
    return 0;
}

static int enc(const Node *node, PyObject *v, Buf *b, int depth) {
    if (depth > MAX_DEPTH)
        return no();
    switch (node->kind) {
    case K_NULL:
        return v == Py_None ? 0 : no();
    case K_BOOL:
        if (Py_TYPE(v) != &PyBool_Type)
            return no();
        return put(b, v == Py_True ? "\x01" : "\x00", 1);
    case K_INT: case K_LONG: {
        if (!PyLong_CheckExact(v))
            return no();
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || (x == -1 && PyErr_Occurred()))
            return no();
        if (node->kind == K_INT && (x < INT32_MIN || x > INT32_MAX))
            return no();
        return put_long(b, x);
    }
    case K_FLOAT: case K_DOUBLE: {
        if (!PyFloat_CheckExact(v) || reserve(b, 8) < 0)
            return no();
        int size = node->kind == K_FLOAT ? 4 : 8;
        double x = PyFloat_AS_DOUBLE(v);
        if (size == 4 ? PyFloat_Pack4(x, b->p + b->len, 1) : PyFloat_Pack8(x, b->p + b->len, 1))
            return no(); /* out of a float's range */
        b->len += size;
        return 0;
    }
    case K_STRING: {
        Py_ssize_t n;
        const char *s = PyUnicode_CheckExact(v) ? PyUnicode_AsUTF8AndSize(v, &n) : NULL;
        return s == NULL ? no() : put_bytes(b, s, n);
    }
    case K_BYTES:
        if (!PyBytes_CheckExact(v))
            return no();
        return put_bytes(b, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v));
    case K_FIXED:
        if (!PyBytes_CheckExact(v) || PyBytes_GET_SIZE(v) != node->count)
            return no();
        return put(b, PyBytes_AS_STRING(v), node->count);
    case K_ENUM: {
        PyObject *at = PyUnicode_CheckExact(v) ? PyDict_GetItemWithError(node->index, v) : NULL;
        return at == NULL ? no() : put_long(b, PyLong_AsLongLong(at));
    }
    case K_ARRAY: {
        if (!PyList_CheckExact(v))
            return no();
        Py_ssize_t n = PyList_GET_SIZE(v);
        if (n && put_long(b, n) < 0)
            return -1;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); i++)
            if (enc(node->kids[0], PyList_GET_ITEM(v, i), b, depth + 1) < 0)
                return -1;
        return put(b, "\x00", 1);
    }
    case K_MAP: {
        if (!PyDict_CheckExact(v))
            return no();
        Py_ssize_t n = PyDict_GET_SIZE(v), pos = 0;
        PyObject *key, *item;
        if (n && put_long(b, n) < 0)
            return -1;
        while (PyDict_Next(v, &pos, &key, &item)) {
            Py_ssize_t len;
            const char *s = PyUnicode_CheckExact(key) ? PyUnicode_AsUTF8AndSize(key, &len) : NULL;
            if (s == NULL || put_bytes(b, s, len) < 0 || enc(node->kids[0], item, b, depth + 1) < 0)
                return -1;
        }
        return put(b, "\x00", 1);
    }
    case K_RECORD:
        return enc_record(node, v, b, depth);
    case K_UNION: {
        int c = class_of(v);
        int at = c == C_CLASSES ? -1 : node->branch[c];
        if (at < 0)
            return no(); /* no branch, or several, takes this type: fastavro chooses */
        if (c == C_DICT) { /* fastavro's {"-type": name} notation picks a branch itself */
            PyObject *tag = PyDict_GetItemString(v, "-type");
            if (tag != NULL)
                return no();
        }
        if (put_long(b, at) < 0)
            return -1;
        return enc(node->kids[at], v, b, depth + 1);
    }
    }
    return no();
}

static Program *program_of(PyObject *capsule) {
    return PyCapsule_GetPointer(capsule, CAPSULE);
}

/* encode(program, value) -> bytes */
static PyObject *encode(PyObject *self, PyObject *args) {
    PyObject *capsule, *v;
    if (!PyArg_ParseTuple(args, "OO", &capsule, &v))
        return NULL;
    Program *prog = program_of(capsule);
    if (prog == NULL)
        return NULL;
    /* A dict lookup can run a key's __eq__ (a hash collision), and with it another thread
     * that encodes: the shared buffer is in use, so that one goes to fastavro. */
    static int busy;
    if (busy) {
        PyErr_SetString(PyExc_ValueError, "not encoded natively: encoder busy");
        return NULL;
    }
    busy = 1;
    out.len = 0;
    int rc = enc(&prog->nodes[0], v, &out, 0);
    busy = 0;
    if (rc < 0) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "not encoded natively: fastavro decides");
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize(out.p, out.len);
    if (out.cap > (1 << 20)) {
        free(out.p);
        out.p = NULL;
        out.cap = 0;
    }
    return result;
}

/* ---------------------------------------------------------------- decoding */

typedef struct {
    const unsigned char *p, *end;
} In;

static int read_long(In *in, int64_t *value) {
    uint64_t v = 0;
    int shift = 0;
    for (;;) {
        if (in->p >= in->end)
            return no();
        unsigned char c = *in->p++;
        if (shift == 63 && (c & 0x7e))
            return no(); /* more than 64 bits */
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            break;
        shift += 7;
        if (shift > 63)
            return no();
    }
    *value = (int64_t)((v >> 1) ^ (~(v & 1) + 1));
    return 0;
}

static const char *take(In *in, int64_t n) {
    if (n < 0 || n > in->end - in->p)
        return NULL;
    const char *s = (const char *)in->p;
    in->p += n;
    return s;
}

static PyObject *dec(const Node *node, In *in, PyObject *deepcopy, int depth);

static PyObject *dec_string(In *in) {
    int64_t n;
    const char *s;
    if (read_long(in, &n) < 0 || (s = take(in, n)) == NULL)
        return NULL;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, NULL); /* strict, as fastavro */
}

#define MAX_EMPTY_ITEMS (1 << 20)

/* The item count of the next block of an array or map; 0 at the end. Items that take
 * bytes cannot be more than the bytes left; items that take none (an array of nulls), a
 * million a block at most (more: fastavro decides). */
static int block_count(In *in, int64_t *count, const Node *item) {
    int64_t size;
    if (read_long(in, count) < 0)
        return -1;
    if (*count < 0) {
        if (*count == INT64_MIN || read_long(in, &size) < 0)
            return no();
        *count = -*count;
    }
    return *count > (item->empty ? MAX_EMPTY_ITEMS : in->end - in->p) ? no() : 0;
}

static PyObject *dec_array(const Node *node, In *in, PyObject *deepcopy, int depth) {
    PyObject *list = PyList_New(0);
    int64_t count = 0;
    while (list != NULL) {
        if (block_count(in, &count, node->kids[0]) < 0)
            Py_CLEAR(list);
        else if (count == 0)
            break;
        for (int64_t j = 0; j < count && list != NULL; j++) {
            PyObject *item = dec(node->kids[0], in, deepcopy, depth + 1);
            if (item == NULL || PyList_Append(list, item) < 0)
                Py_CLEAR(list);
            Py_XDECREF(item);
        }
    }
    return list;
}

static PyObject *dec_map(const Node *node, In *in, PyObject *deepcopy, int depth) {
    PyObject *dict = PyDict_New();
    int64_t count = 0;
    while (dict != NULL) {
        if (block_count(in, &count, &(const Node){.kind = K_STRING}) < 0)
            Py_CLEAR(dict);
        else if (count == 0)
            break;
        for (int64_t j = 0; j < count && dict != NULL; j++) {
            PyObject *key = dec_string(in), *item = NULL;
            if (key == NULL || (item = dec(node->kids[0], in, deepcopy, depth + 1)) == NULL
                    || PyDict_SetItem(dict, key, item) < 0)
                Py_CLEAR(dict);
            Py_XDECREF(key);
            Py_XDECREF(item);
        }
    }
    return dict;
}

static PyObject *dec_record(const Node *node, In *in, PyObject *deepcopy, int depth) {
    PyObject *dict = PyDict_New();
    for (Py_ssize_t j = 0; j < node->count && dict != NULL; j++) {
        PyObject *item = dec(node->kids[j], in, deepcopy, depth + 1);
        if (item == NULL || (node->keys[j] && PyDict_SetItem(dict, node->keys[j], item) < 0))
            Py_CLEAR(dict);
        Py_XDECREF(item);
    }
    for (Py_ssize_t j = 0; dict != NULL && j < PyTuple_GET_SIZE(node->defaults); j++) {
        PyObject *d = PyTuple_GET_ITEM(node->defaults, j), *item = PyTuple_GET_ITEM(d, 1);
        if (PyObject_IsTrue(PyTuple_GET_ITEM(d, 2)))
            item = PyObject_CallOneArg(deepcopy, item);
        else
            Py_INCREF(item);
        if (item == NULL || PyDict_SetItem(dict, PyTuple_GET_ITEM(d, 0), item) < 0)
            Py_CLEAR(dict);
        Py_XDECREF(item);
    }
    return dict;
}

static PyObject *dec(const Node *node, In *in, PyObject *deepcopy, int depth) {
    int64_t n;
    const char *s;
    if (depth > MAX_DEPTH)
        return NULL;
    switch (node->kind) {
    case K_NULL:
        Py_RETURN_NONE;
    case K_BOOL:
        if (in->p >= in->end || *in->p > 1)
            return NULL;
        return PyBool_FromLong(*in->p++);
    case K_INT: case K_LONG:
        return read_long(in, &n) < 0 ? NULL : PyLong_FromLongLong(n);
    case K_FLOAT:
        return (s = take(in, 4)) == NULL ? NULL
            : PyFloat_FromDouble(PyFloat_Unpack4(s, 1));
    case K_DOUBLE:
        return (s = take(in, 8)) == NULL ? NULL
            : PyFloat_FromDouble(PyFloat_Unpack8(s, 1));
    case K_STRING:
        return dec_string(in);
    case K_BYTES:
        if (read_long(in, &n) < 0 || (s = take(in, n)) == NULL)
            return NULL;
        return PyBytes_FromStringAndSize(s, (Py_ssize_t)n);
    case K_FIXED:
        return (s = take(in, node->count)) == NULL ? NULL
            : PyBytes_FromStringAndSize(s, node->count);
    case K_ENUM:
        if (read_long(in, &n) < 0 || n < 0 || n >= node->count)
            return NULL;
        return Py_NewRef(PyTuple_GET_ITEM(node->symbols, n));
    case K_ARRAY:
        return dec_array(node, in, deepcopy, depth);
    case K_MAP:
        return dec_map(node, in, deepcopy, depth);
    case K_RECORD:
        return dec_record(node, in, deepcopy, depth);
    case K_UNION:
        if (read_long(in, &n) < 0 || n < 0 || n >= node->count)
            return NULL;
        return dec(node->kids[n], in, deepcopy, depth + 1);
    }
    return NULL;
}

/* decode(program, data) -> (value, bytes used) */
static PyObject *decode(PyObject *self, PyObject *args) {
    PyObject *capsule;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "Oy*", &capsule, &data))
        return NULL;
    Program *prog = program_of(capsule);
    if (prog == NULL) {
        PyBuffer_Release(&data);
        return NULL;
    }
    In in = {data.buf, (const unsigned char *)data.buf + data.len};
    PyObject *v = dec(&prog->nodes[0], &in, prog->deepcopy, 0), *result = NULL;
    if (v == NULL) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "not decoded natively: fastavro decides");
    } else {
        result = Py_BuildValue("(Nn)", v, (Py_ssize_t)(in.p - (const unsigned char *)data.buf));
    }
    PyBuffer_Release(&data);
    return result;
}

/* decode_many(program, data, count) -> [value, ...]: ``count`` values back to back that
 * fill ``data`` exactly (the records of an Avro container block). */
static PyObject *decode_many(PyObject *self, PyObject *args) {
    PyObject *capsule;
    Py_buffer data;
    Py_ssize_t count;
    if (!PyArg_ParseTuple(args, "Oy*n", &capsule, &data, &count))
        return NULL;
    Program *prog = program_of(capsule);
    PyObject *list = NULL;
    /* every value takes a byte at least, unless the type takes none */
    if (prog != NULL && count >= 0
            && (count <= data.len || (prog->nodes[0].empty && count <= MAX_EMPTY_ITEMS)))
        list = PyList_New(count);
    In in = {data.buf, (const unsigned char *)data.buf + data.len};
    for (Py_ssize_t i = 0; list != NULL && i < count; i++) {
        PyObject *v = dec(&prog->nodes[0], &in, prog->deepcopy, 0);
        if (v == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, i, v);
    }
    if (list != NULL && in.p != in.end)
        Py_CLEAR(list);
    PyBuffer_Release(&data);
    if (list == NULL && prog != NULL) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "not decoded natively: fastavro decides");
    }
    return list;
}

static PyMethodDef methods[] = {
    {"compile", compile, METH_VARARGS, "compile(nodes, deepcopy) -> program"},
    {"encode", encode, METH_VARARGS,
     "encode(program, value) -> bytes; ValueError when fastavro must decide."},
    {"decode", decode, METH_VARARGS,
     "decode(program, data) -> (value, bytes used); ValueError when fastavro must decide."},
    {"decode_many", decode_many, METH_VARARGS,
     "decode_many(program, data, count) -> [value, ...] filling data exactly; ValueError "
     "when fastavro must decide."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_avro_native",
    .m_doc = "Avro binary <-> Python values for compiled schemas.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__avro_native(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    const char *names[K_KINDS] = {"K_NULL", "K_BOOL", "K_INT", "K_LONG", "K_FLOAT",
                                  "K_DOUBLE", "K_STRING", "K_BYTES", "K_FIXED", "K_ENUM",
                                  "K_ARRAY", "K_MAP", "K_RECORD", "K_UNION"};
    for (int k = 0; k < K_KINDS; k++)
        if (PyModule_AddIntConstant(m, names[k], k) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    return m;
}
