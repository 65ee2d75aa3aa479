/* The compiled path of node-list answering: CLEVR node lists (parsed JSON) read and run in C.
 *
 * This file knows no CLEVR function name.  It implements a handful of operation *kinds*
 * (KINDS below: "filter", "query", "eq", ...); the Python side (reasoning/executor/compiled.py)
 * reads the executor's operation table (signatures from the catalogue) and hands this module,
 * through configure(), which function name is which kind on which attribute, every signature,
 * the type-compatibility matrix, the vocabularies and the answer strings.  A function that is
 * not handed over is not known here, and any node list using it is returned to Python.
 *
 * Anything irregular -- a node list that is not a list of dicts, an unknown function, a word
 * outside its vocabulary, a wrong number of inputs, a type mismatch, a scene with more than 64
 * objects or an unknown attribute value, an odd relationship row -- makes answer() return the
 * SLOW sentinel, and the Python path answers that question (with its own errors).  So the C
 * path only ever answers node lists the ordinary path would read and accept, and answers them
 * the way the symbolic executor does: every node in list order (shared nodes once, unread
 * nodes too), ``unique`` of a set that is not one object makes the execution invalid (None).
 *
 * Two reads skip the C API where CPython's layout is known and checked (see DIRECT_DICT and
 * DIRECT_VALUES): node dicts' entries straight from their table (3.11, 3.12), and scene objects'
 * attributes from their inline values (3.11).  Anything else takes the C API path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_NODES 64   /* longer node lists go to Python */
#define MAX_OBJECTS 64 /* bits of an object set */
#define MAX_OPS 128
#define MAX_TYPES 32
#define MAX_ATTRS 4     /* attributes of an object */
#define MAX_WORDS 16    /* values of one attribute */
#define MAX_RELS 8
#define MAX_ARITY 2

enum { K_SCENE, K_FILTER, K_UNIQUE, K_RELATE, K_COUNT, K_EXIST, K_UNION, K_INTERSECT,
       K_EQ, K_LT, K_GT, K_QUERY, K_SAME, K_NKINDS };
static const char *KIND_NAMES[K_NKINDS] = {"scene", "filter", "unique", "relate", "count",
                                           "exist", "union", "intersect", "eq", "lt", "gt",
                                           "query", "same"};

enum { A_NONE, A_BOOL, A_INTEGER, A_WORD }; /* how a root's output becomes an answer */

typedef struct {
    int kind, attr, n_in, in_t[MAX_ARITY], out_t, side_t; /* side_t -1: no side input */
} Op;

/* A small open-addressing table str -> int, read without a Python call per lookup (the
 * strings' hashes are cached in them; names are compared by length and bytes). */
#define TABLE_SIZE 128
typedef struct {
    Py_hash_t hash[TABLE_SIZE];
    PyObject *name[TABLE_SIZE]; /* borrowed from the dict it was filled from (held) */
    int value[TABLE_SIZE];
} Table;

static inline int same_str(PyObject *a, PyObject *b) {
    Py_ssize_t len = PyUnicode_GET_LENGTH(a);
    if (len != PyUnicode_GET_LENGTH(b)) return 0;
    if (PyUnicode_IS_COMPACT_ASCII(a) && PyUnicode_IS_COMPACT_ASCII(b)) {
        /* the short names here: compared inline in whole words, the last word overlapping
         * the one before it (no library call, no byte loop; never past the last character) */
        const unsigned char *x = PyUnicode_DATA(a), *y = PyUnicode_DATA(b);
        if (len >= 8) {
            uint64_t u, v;
            for (Py_ssize_t i = 0; i + 8 < len; i += 8) {
                memcpy(&u, x + i, 8);
                memcpy(&v, y + i, 8);
                if (u != v) return 0;
            }
            memcpy(&u, x + len - 8, 8);
            memcpy(&v, y + len - 8, 8);
            return u == v;
        }
        if (len >= 4) {
            uint32_t u, v, p, q;
            memcpy(&u, x, 4);
            memcpy(&v, y, 4);
            memcpy(&p, x + len - 4, 4);
            memcpy(&q, y + len - 4, 4);
            return u == v && p == q;
        }
        for (Py_ssize_t i = 0; i < len; i++)
            if (x[i] != y[i]) return 0;
        return 1;
    }
    int kind = PyUnicode_KIND(a);
    return kind == PyUnicode_KIND(b) &&
           memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)len * kind) == 0;
}

/* value of exact str s, or -1 (absent); -2 on a Python error */
static inline int table_find(const Table *t, PyObject *s) {
#if PY_VERSION_HEX < 0x030E0000
    Py_hash_t h = ((PyASCIIObject *)s)->hash; /* cached in the string once computed */
    if (h == -1) h = PyObject_Hash(s);
#else
    Py_hash_t h = PyObject_Hash(s);
#endif
    if (h == -1) return -2;
    for (size_t i = (size_t)h & (TABLE_SIZE - 1);; i = (i + 1) & (TABLE_SIZE - 1)) {
        PyObject *name = t->name[i];
        if (name == NULL) return -1;
        if (t->hash[i] == h && (name == s || same_str(name, s))) return t->value[i];
    }
}

/* fill t from dict d (exact str keys, int values in 0..hi); d must outlive t */
static int table_fill(Table *t, PyObject *d, long hi) {
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    memset(t, 0, sizeof(Table));
    if (PyDict_GET_SIZE(d) > TABLE_SIZE / 2) goto bad;
    while (PyDict_Next(d, &pos, &k, &v)) {
        long x = PyLong_AsLong(v);
        if (!PyUnicode_CheckExact(k) || x < 0 || x > hi) goto bad;
        Py_hash_t h = PyObject_Hash(k);
        if (h == -1) return -1;
        size_t i = (size_t)h & (TABLE_SIZE - 1);
        while (t->name[i] != NULL) i = (i + 1) & (TABLE_SIZE - 1);
        t->hash[i] = h;
        t->name[i] = k;
        t->value[i] = (int)x;
    }
    return 0;
bad:
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "configure: malformed table");
    return -1;
}

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000 && !defined(Py_GIL_DISABLED)
#define DIRECT_DICT 1
typedef struct { /* CPython's struct _dictkeysobject (Include/internal/pycore_dict.h) */
    Py_ssize_t dk_refcnt;
    uint8_t dk_log2_size, dk_log2_index_bytes, dk_kind;
    uint32_t dk_version;
    Py_ssize_t dk_usable, dk_nentries;
    char dk_indices[];
} DictKeys;
typedef struct {
    PyObject *me_key, *me_value;
} DictUnicodeEntry;
#define DICT_KEYS_UNICODE 1
static int g_direct_dict = 0; /* set by direct_dict_works() at import */

/* the entries of a combined table of str keys, or NULL (then use PyDict_Next) */
static inline const DictUnicodeEntry *dict_entries(PyObject *d, Py_ssize_t *n) {
    PyDictObject *mp = (PyDictObject *)d;
    if (!g_direct_dict || mp->ma_values != NULL) return NULL;
    const DictKeys *k = (const DictKeys *)mp->ma_keys;
    if (k->dk_kind != DICT_KEYS_UNICODE) return NULL;
    *n = k->dk_nentries;
    return (const DictUnicodeEntry *)(k->dk_indices + ((size_t)1 << k->dk_log2_index_bytes));
}
#endif

/* ------------------------------------------------------------------ configuration */
static int g_configured = 0;
static long g_generation = 0;
static PyObject *g_codes = NULL;        /* function name -> op index */
static Op g_ops[MAX_OPS];
static int g_nops = 0;
static int g_ntypes = 0;
static unsigned char g_compat[MAX_TYPES][MAX_TYPES]; /* [output type][input type] */
static int g_answer[MAX_TYPES];         /* A_* per type */
static int g_type_attr[MAX_TYPES];      /* attribute of a word type, else -1 */
static PyObject *g_side_words[MAX_TYPES]; /* side-input type -> dict word -> code (or NULL) */
static Table g_fn_table;                  /* g_codes as a Table */
static Table g_word_table[MAX_TYPES];     /* g_side_words as Tables */
static int g_nattrs = 0;
static PyObject *g_attr_names[MAX_ATTRS]; /* SceneObject attribute names */
static PyObject *g_attr_codes[MAX_ATTRS]; /* dict value -> code, for scene binding */
static Table g_attr_table[MAX_ATTRS];     /* g_attr_codes as Tables */
static PyObject *g_attr_words[MAX_ATTRS]; /* tuple code -> answer string */
static int g_nrels = 0;
static PyObject *g_rel_names[MAX_RELS];
static PyObject *g_numerals = NULL;      /* tuple: count -> answer string */
static PyObject *g_yes = NULL, *g_no = NULL, *g_slow = NULL;
static long g_max_depth = 0, g_max_expanded = 0;
static PyObject *g_objects_name = NULL, *g_relationships_name = NULL;

/* node keys: the spelled-out names, and the last key object seen for each (json.loads shares
 * one key object per name within a parse, so most keys are found by identity). */
enum { KEY_FUNCTION, KEY_TYPE, KEY_INPUTS, KEY_VALUE_INPUTS, KEY_SIDE_INPUTS, N_KEYS };
static const char *KEY_NAMES[N_KEYS] = {"function", "type", "inputs", "value_inputs",
                                        "side_inputs"};
static PyObject *g_key_seen[N_KEYS];

static void clear_config(void) {
    Py_CLEAR(g_codes);
    for (int t = 0; t < MAX_TYPES; t++) Py_CLEAR(g_side_words[t]);
    for (int a = 0; a < MAX_ATTRS; a++) {
        Py_CLEAR(g_attr_names[a]);
        Py_CLEAR(g_attr_codes[a]);
        Py_CLEAR(g_attr_words[a]);
    }
    for (int r = 0; r < MAX_RELS; r++) Py_CLEAR(g_rel_names[r]);
    Py_CLEAR(g_numerals);
    Py_CLEAR(g_yes);
    Py_CLEAR(g_no);
    Py_CLEAR(g_slow);
    g_configured = 0;
}

static PyObject *need(PyObject *spec, const char *name) {
    PyObject *v = PyDict_GetItemString(spec, name); /* borrowed */
    if (v == NULL) PyErr_Format(PyExc_KeyError, "configure: missing %s", name);
    return v;
}

static int small_int(PyObject *v, long lo, long hi, long *out, const char *what) {
    long x = PyLong_AsLong(v);
    if (x == -1 && PyErr_Occurred()) return -1;
    if (x < lo || x > hi) {
        PyErr_Format(PyExc_ValueError, "configure: %s %ld outside %ld..%ld", what, x, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

/* configure(spec: dict): see reasoning/executor/compiled.py, _spec(). */
static PyObject *configure(PyObject *self, PyObject *spec) {
    if (!PyDict_Check(spec)) {
        PyErr_SetString(PyExc_TypeError, "configure: expected a dict");
        return NULL;
    }
    clear_config();
    long x;
    PyObject *v;
    if (!(v = need(spec, "ntypes")) || small_int(v, 1, MAX_TYPES, &x, "ntypes")) goto fail;
    g_ntypes = (int)x;
    if (!(v = need(spec, "max_depth")) || small_int(v, 1, 1L << 30, &g_max_depth, "max_depth"))
        goto fail;
    if (!(v = need(spec, "max_expanded")) ||
        small_int(v, 1, 1L << 30, &g_max_expanded, "max_expanded"))
        goto fail;
    /* ops: list of (kind, attr, (input types...), output type, side type or -1) */
    PyObject *ops = need(spec, "ops");
    if (!ops || !PyList_Check(ops)) goto bad;
    g_nops = (int)PyList_GET_SIZE(ops);
    if (g_nops > MAX_OPS) goto bad;
    for (int k = 0; k < g_nops; k++) {
        PyObject *t = PyList_GET_ITEM(ops, k), *ins;
        long kind, attr, out, side, it;
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 5) goto bad;
        if (small_int(PyTuple_GET_ITEM(t, 0), 0, K_NKINDS - 1, &kind, "kind") ||
            small_int(PyTuple_GET_ITEM(t, 1), -1, MAX_ATTRS - 1, &attr, "attr") ||
            small_int(PyTuple_GET_ITEM(t, 3), 0, g_ntypes - 1, &out, "output type") ||
            small_int(PyTuple_GET_ITEM(t, 4), -1, g_ntypes - 1, &side, "side type"))
            goto fail;
        ins = PyTuple_GET_ITEM(t, 2);
        if (!PyTuple_Check(ins) || PyTuple_GET_SIZE(ins) > MAX_ARITY) goto bad;
        g_ops[k].kind = (int)kind;
        g_ops[k].attr = (int)attr;
        g_ops[k].out_t = (int)out;
        g_ops[k].side_t = (int)side;
        g_ops[k].n_in = (int)PyTuple_GET_SIZE(ins);
        for (int j = 0; j < g_ops[k].n_in; j++) {
            if (small_int(PyTuple_GET_ITEM(ins, j), 0, g_ntypes - 1, &it, "input type")) goto fail;
            g_ops[k].in_t[j] = (int)it;
        }
    }
    if (!(g_codes = need(spec, "codes")) || !PyDict_Check(g_codes)) {
        g_codes = NULL;
        goto bad;
    }
    Py_INCREF(g_codes);
    if (table_fill(&g_fn_table, g_codes, g_nops - 1)) goto fail;
    /* compat: bytes of ntypes*ntypes; answer: tuple of A_*; type_attr: tuple */
    PyObject *compat = need(spec, "compat"), *answer = need(spec, "answer"),
             *type_attr = need(spec, "type_attr"), *side_words = need(spec, "side_words");
    if (!compat || !answer || !type_attr || !side_words) goto fail;
    if (!PyBytes_Check(compat) || PyBytes_GET_SIZE(compat) != g_ntypes * g_ntypes) goto bad;
    if (!PyTuple_Check(answer) || PyTuple_GET_SIZE(answer) != g_ntypes) goto bad;
    if (!PyTuple_Check(type_attr) || PyTuple_GET_SIZE(type_attr) != g_ntypes) goto bad;
    if (!PyTuple_Check(side_words) || PyTuple_GET_SIZE(side_words) != g_ntypes) goto bad;
    for (int a = 0; a < g_ntypes; a++) {
        for (int b = 0; b < g_ntypes; b++)
            g_compat[a][b] = (unsigned char)PyBytes_AS_STRING(compat)[a * g_ntypes + b];
        if (small_int(PyTuple_GET_ITEM(answer, a), A_NONE, A_WORD, &x, "answer kind")) goto fail;
        g_answer[a] = (int)x;
        if (small_int(PyTuple_GET_ITEM(type_attr, a), -1, MAX_ATTRS - 1, &x, "type attr"))
            goto fail;
        g_type_attr[a] = (int)x;
        v = PyTuple_GET_ITEM(side_words, a);
        if (v != Py_None) {
            if (!PyDict_Check(v)) goto bad;
            Py_INCREF(v);
            g_side_words[a] = v;
            if (table_fill(&g_word_table[a], v, MAX_WORDS - 1)) goto fail;
        }
    }
    /* attributes: names, value -> code dicts, code -> word tuples */
    PyObject *names = need(spec, "attr_names"), *codes = need(spec, "attr_codes"),
             *words = need(spec, "attr_words"), *rels = need(spec, "relations");
    if (!names || !codes || !words || !rels) goto fail;
    if (!PyTuple_Check(names) || !PyTuple_Check(codes) || !PyTuple_Check(words) ||
        !PyTuple_Check(rels))
        goto bad;
    g_nattrs = (int)PyTuple_GET_SIZE(names);
    if (g_nattrs > MAX_ATTRS || PyTuple_GET_SIZE(codes) != g_nattrs ||
        PyTuple_GET_SIZE(words) != g_nattrs)
        goto bad;
    for (int a = 0; a < g_nattrs; a++) {
        PyObject *n = PyTuple_GET_ITEM(names, a), *c = PyTuple_GET_ITEM(codes, a),
                 *w = PyTuple_GET_ITEM(words, a);
        if (!PyUnicode_Check(n) || !PyDict_Check(c) || !PyTuple_Check(w) ||
            PyTuple_GET_SIZE(w) > MAX_WORDS)
            goto bad;
        Py_INCREF(n);
        Py_INCREF(c);
        Py_INCREF(w);
        g_attr_names[a] = n;
        g_attr_codes[a] = c;
        g_attr_words[a] = w;
        if (table_fill(&g_attr_table[a], c, MAX_WORDS - 1)) goto fail;
    }
    g_nrels = (int)PyTuple_GET_SIZE(rels);
    if (g_nrels > MAX_RELS) goto bad;
    for (int r = 0; r < g_nrels; r++) {
        v = PyTuple_GET_ITEM(rels, r);
        Py_INCREF(v);
        g_rel_names[r] = v;
    }
    if (!(g_numerals = need(spec, "numerals")) || !PyTuple_Check(g_numerals)) {
        g_numerals = NULL;
        goto bad;
    }
    Py_INCREF(g_numerals);
    if (!(g_yes = need(spec, "yes")) || !(g_no = need(spec, "no")) ||
        !(g_slow = need(spec, "slow"))) {
        g_yes = g_no = g_slow = NULL;
        goto fail;
    }
    Py_INCREF(g_yes);
    Py_INCREF(g_no);
    Py_INCREF(g_slow);
    g_configured = 1;
    g_generation++;
    Py_RETURN_NONE;
bad:
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "configure: malformed spec");
fail:
    clear_config();
    return NULL;
}

/* ------------------------------------------------------------------ scene binding */
typedef struct {
    int n;                                    /* objects */
    uint64_t all;                             /* every object */
    uint8_t codes[MAX_OBJECTS][MAX_ATTRS];    /* attribute codes per object */
    uint64_t vb[MAX_ATTRS][MAX_WORDS];        /* objects holding each value */
    PyObject *rel[MAX_RELS];                  /* relationships[R] (owned), NULL if absent */
} Scene;

enum { UNBOUND = 0, BOUND = 1, UNFIT = 2 };

typedef struct {
    PyObject_HEAD
    PyObject *scenes; /* tuple of the scene objects */
    Py_ssize_t n;
    char *state;      /* per scene: UNBOUND / BOUND / UNFIT */
    Scene *data;
    long generation;
} Bound;

static void bound_dealloc(Bound *b) {
    if (b->data) {
        for (Py_ssize_t s = 0; s < b->n; s++)
            if (b->state[s] == BOUND)
                for (int r = 0; r < MAX_RELS; r++) Py_XDECREF(b->data[s].rel[r]);
        PyMem_Free(b->data);
    }
    PyMem_Free(b->state);
    Py_XDECREF(b->scenes);
    Py_TYPE(b)->tp_free((PyObject *)b);
}

static PyTypeObject BoundType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "reasoning.executor._cnodes.Bound",
    .tp_basicsize = sizeof(Bound),
    .tp_dealloc = (destructor)bound_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Scenes bound (on first use) to attribute codes and value bitsets.",
};

/* The scene's relationships[R] rows (owned references). */
static void read_relations(Scene *sc, PyObject *scene) {
    PyObject *rels = PyObject_GetAttr(scene, g_relationships_name);
    if (rels == NULL) {
        PyErr_Clear(); /* relate then goes slow: Python judges */
        return;
    }
    for (int r = 0; r < g_nrels; r++) {
        sc->rel[r] = PyObject_GetItem(rels, g_rel_names[r]);
        if (sc->rel[r] == NULL) PyErr_Clear(); /* a relation the scene lacks: relate goes slow */
    }
    Py_DECREF(rels);
}

/* An object's attribute value, borrowed in *v (NULL: absent), without a Python attribute
 * lookup where CPython 3.11 keeps it in the object's inline values: the object's type is
 * exactly the last one seen, that type has not changed since (same version tag, same shared
 * keys), defines nothing under the name (no descriptor), and looks attributes up generically;
 * the index of each name in the type's shared keys is found once per type and checked at that
 * moment against PyObject_GetAttr.  Everything else, an object whose __dict__ was made, and
 * other Python versions go through PyObject_GetAttr (new reference in *owned).  Returns -1 on
 * a Python error. */
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000 && defined(DIRECT_DICT)
#define DIRECT_VALUES 1
#define DICT_KEYS_SPLIT 2
static PyTypeObject *g_obj_type = NULL; /* held */
static unsigned int g_obj_version = 0;
static const DictKeys *g_obj_keys = NULL;
static Py_ssize_t g_obj_index[MAX_ATTRS];
static PyTypeObject *g_no_type = NULL; /* held: the last type that could not be read directly */
static unsigned int g_no_version = 0;

static inline PyObject **inline_values(PyObject *o) {
    return *(((PyObject ***)o) - 4); /* CPython 3.11 _PyObject_ValuesPointer */
}

/* Learn where type(o) keeps each attribute; 1 when every one can be read directly. */
static int learn_layout(PyObject *o) {
    PyTypeObject *tp = Py_TYPE(o);
    Py_CLEAR(g_obj_type);
    if (!(tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) || !(tp->tp_flags & Py_TPFLAGS_HEAPTYPE) ||
        !(tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) ||
        tp->tp_getattro != PyObject_GenericGetAttr)
        return 0;
    const DictKeys *k = (const DictKeys *)((PyHeapTypeObject *)tp)->ht_cached_keys;
    PyObject **vals = inline_values(o);
    if (k == NULL || k->dk_kind != DICT_KEYS_SPLIT || vals == NULL) return 0;
    const DictUnicodeEntry *e =
        (const DictUnicodeEntry *)(k->dk_indices + ((size_t)1 << k->dk_log2_index_bytes));
    for (int a = 0; a < g_nattrs; a++) {
        PyObject *name = g_attr_names[a];
        if (_PyType_Lookup(tp, name) != NULL) return 0; /* a class attribute or descriptor */
        g_obj_index[a] = -1;
        for (Py_ssize_t j = 0; j < k->dk_nentries; j++)
            if (e[j].me_key != NULL && PyUnicode_CheckExact(e[j].me_key) &&
                same_str(e[j].me_key, name))
                g_obj_index[a] = j;
        if (g_obj_index[a] < 0) return 0;
        PyObject *v = PyObject_GetAttr(o, name); /* the check: the same object both ways */
        int same = v != NULL && v == vals[g_obj_index[a]];
        Py_XDECREF(v);
        PyErr_Clear();
        if (!same) return 0;
    }
    g_obj_type = (PyTypeObject *)Py_NewRef(tp);
    g_obj_version = tp->tp_version_tag;
    g_obj_keys = k;
    return 1;
}

/* whether objects of type tp can be read directly now (learning its layout from o) */
static inline int direct_type(PyObject *o) {
    PyTypeObject *tp = Py_TYPE(o);
    if (tp == g_obj_type && (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) &&
        tp->tp_version_tag == g_obj_version &&
        (const DictKeys *)((PyHeapTypeObject *)tp)->ht_cached_keys == g_obj_keys)
        return 1;
    if (tp == g_no_type && tp->tp_version_tag == g_no_version) return 0;
    if (learn_layout(o)) return 1;
    Py_XSETREF(g_no_type, (PyTypeObject *)Py_NewRef(tp));
    g_no_version = tp->tp_version_tag;
    return 0;
}
#endif

/* Bind scene s; returns BOUND or UNFIT (errors are cleared: Python judges that scene). */
static int bind_one(Bound *b, Py_ssize_t s) {
    Scene *sc = &b->data[s];
    PyObject *scene = PyTuple_GET_ITEM(b->scenes, s);
    PyObject *objs = PyObject_GetAttr(scene, g_objects_name);
    int ok = 0;
    memset(sc->vb, 0, sizeof(sc->vb));
    memset(sc->rel, 0, sizeof(sc->rel));
    if (objs == NULL || !(PyTuple_CheckExact(objs) || PyList_CheckExact(objs))) goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(objs);
    if (n > MAX_OBJECTS) goto done;
    sc->n = (int)n;
    sc->all = n == 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = PySequence_Fast_GET_ITEM(objs, i);
        PyObject **vals = NULL;
#ifdef DIRECT_VALUES
        if (direct_type(o)) vals = inline_values(o); /* NULL when its __dict__ was made */
#endif
        for (int a = 0; a < g_nattrs; a++) {
            PyObject *v = vals != NULL ? vals[g_obj_index[a]] : NULL, *owned = NULL;
            if (v == NULL) {
                v = owned = PyObject_GetAttr(o, g_attr_names[a]);
                if (v == NULL) goto done;
            }
            int code = PyUnicode_CheckExact(v) ? table_find(&g_attr_table[a], v) : -1;
            Py_XDECREF(owned);
            if (code < 0 || code >= MAX_WORDS) goto done;
            sc->codes[i][a] = (uint8_t)code;
            sc->vb[a][code] |= (uint64_t)1 << i;
        }
    }
    /* read now, not on the first relate: reading may run Python code (a property), which must
     * not happen while a node list's fields are held (answer_one reads them all first) */
    read_relations(sc, scene);
    ok = 1;
done:
    if (PyErr_Occurred()) PyErr_Clear();
    Py_XDECREF(objs);
    if (!ok) {
        for (int r = 0; r < MAX_RELS; r++) Py_CLEAR(sc->rel[r]);
        return b->state[s] = UNFIT;
    }
    return b->state[s] = BOUND;
}

static PyObject *bind(PyObject *self, PyObject *scenes) {
    if (!g_configured) {
        PyErr_SetString(PyExc_RuntimeError, "_cnodes: configure() was not called");
        return NULL;
    }
    PyObject *tup = PySequence_Tuple(scenes);
    if (tup == NULL) return NULL;
    Bound *b = PyObject_New(Bound, &BoundType);
    if (b == NULL) {
        Py_DECREF(tup);
        return NULL;
    }
    b->scenes = tup;
    b->n = PyTuple_GET_SIZE(tup);
    b->generation = g_generation;
    b->state = PyMem_Calloc(b->n ? b->n : 1, 1);
    b->data = PyMem_Calloc(b->n ? b->n : 1, sizeof(Scene));
    if (b->state == NULL || b->data == NULL) {
        Py_DECREF(b);
        return PyErr_NoMemory();
    }
    return (PyObject *)b;
}

/* ------------------------------------------------------------------ answering */
static int key_lookup(PyObject *k) {
    for (int j = 0; j < N_KEYS; j++)
        if (k == g_key_seen[j]) return j;
    if (!PyUnicode_CheckExact(k)) return PyUnicode_Check(k) ? -2 : -1;
    for (int j = 0; j < N_KEYS; j++) {
        if (PyUnicode_CompareWithASCIIString(k, KEY_NAMES[j]) == 0) {
            Py_INCREF(k); /* held, so the pointer cannot be reused by another object */
            Py_XSETREF(g_key_seen[j], k);
            return j;
        }
    }
    return -1; /* another key: ignored, as from_clevr ignores it */
}

/* A key's KEY_* (or -1: another key, -2: a str subclass), found in one or two pointer
 * comparisons for the keys json.loads shares within a parse: a small table by address (two
 * slots per key: its own and its neighbour) holds each key object already recognised (held,
 * so its address cannot be taken by another object meanwhile).  A slot is taken over only
 * from a key that is no longer the last one seen under its name, so live keys landing on the
 * same slots do not evict each other (a third is found by key_lookup's comparisons, as
 * before); anything else is looked up by key_lookup. */
#define KEY_SLOTS 64
static PyObject *g_key_slot[KEY_SLOTS];
static int g_key_code[KEY_SLOTS];

static inline int key_live(size_t h) {
    return g_key_slot[h] != NULL && g_key_seen[g_key_code[h]] == g_key_slot[h];
}

static inline int key_of(PyObject *k) {
    size_t h = (size_t)(((uint64_t)(uintptr_t)k * 0x9E3779B97F4A7C15ull) >> 58);
    if (g_key_slot[h] == k) return g_key_code[h];
    if (g_key_slot[h ^ 1] == k) return g_key_code[h ^ 1];
    int code = key_lookup(k);
    if (code >= 0) {
        if (key_live(h)) {
            h ^= 1;
            if (key_live(h)) return code; /* both taken by live keys: keep them */
        }
        PyObject *old = g_key_slot[h];
        g_key_slot[h] = Py_NewRef(k);
        g_key_code[h] = code;
        Py_XDECREF(old); /* a str: freeing it runs no Python code */
    }
    return code;
}

#define SLOW 1
#define OK 0

/* CPython keeps the small ints (0..256 at least) as one array of singletons: an input index
 * is then found from its address alone, without reading the object (checked at import). */
static const char *g_small0 = NULL;
static int g_small_shift = -1;

static void find_small_ints(void) {
    PyObject *zero = PyLong_FromLong(0), *one = PyLong_FromLong(1);
    if (zero == NULL || one == NULL) goto done;
    Py_ssize_t stride = (const char *)one - (const char *)zero;
    int shift = -1;
    for (int k = 0; k < 16; k++)
        if (stride == ((Py_ssize_t)1 << k)) shift = k;
    if (shift < 0) goto done;
    for (long i = 0; i < MAX_NODES; i++) {
        PyObject *x = PyLong_FromLong(i);
        int ok = x != NULL && (const char *)x == (const char *)zero + (i << shift);
        Py_XDECREF(x);
        if (!ok) goto done;
    }
    g_small0 = (const char *)zero;
    g_small_shift = shift;
done:
    PyErr_Clear();
    Py_XDECREF(zero);
    Py_XDECREF(one);
}

/* x as a node index 0..MAX_NODES-1, else -1 (not an exact int, or out of range) */
static inline long node_index(PyObject *x) {
    if (g_small_shift >= 0) {
        size_t d = (size_t)((const char *)x - g_small0);
        if ((d & (((size_t)1 << g_small_shift) - 1)) == 0 && (d >> g_small_shift) < MAX_NODES)
            return (long)(d >> g_small_shift);
    }
    if (!PyLong_CheckExact(x)) return -1;
    long v = PyLong_AsLong(x);
    if (v == -1 && PyErr_Occurred()) PyErr_Clear();
    return v >= 0 && v < MAX_NODES ? v : -1;
}

/* A node dict's entries are read straight from its table where the layout is known (CPython
 * 3.11 and 3.12: a combined table of str keys, the usual json.loads dict), and checked at
 * import against PyDict_Next (direct_dict_works); otherwise, and for any other dict, through
 * PyDict_Next.  Both visit the same entries in the same order. */

/* One dict entry of a node (k, v); returns 1 to go on, or SLOW. */
static inline int node_entry(PyObject *k, PyObject *v, PyObject **fn, PyObject **ins,
                             PyObject **side) {
    switch (key_of(k)) {
    case KEY_FUNCTION:
    case KEY_TYPE:
        if (*fn) return SLOW; /* both spellings: from_clevr decides */
        *fn = v;
        break;
    case KEY_INPUTS:
        *ins = v;
        break;
    case KEY_VALUE_INPUTS:
    case KEY_SIDE_INPUTS:
        if (*side) return SLOW;
        *side = v;
        break;
    case -2:
        return SLOW; /* a str subclass as key */
    default:
        break;
    }
    return OK;
}

/* A node's fields; returns SLOW on anything irregular. */
static inline int read_node(PyObject *node, PyObject **fn, PyObject **ins, PyObject **side) {
    *fn = *ins = *side = NULL;
    if (!PyDict_CheckExact(node)) return SLOW;
#ifdef DIRECT_DICT
    Py_ssize_t ne;
    const DictUnicodeEntry *e = dict_entries(node, &ne);
    if (e != NULL) {
        for (Py_ssize_t i = 0; i < ne; i++)
            if (e[i].me_value != NULL && node_entry(e[i].me_key, e[i].me_value, fn, ins, side))
                return SLOW;
        return *fn == NULL ? SLOW : OK;
    }
#endif
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(node, &pos, &k, &v))
        if (node_entry(k, v, fn, ins, side)) return SLOW;
    return *fn == NULL ? SLOW : OK;
}

#ifdef DIRECT_DICT
/* Whether reading a table directly gives what PyDict_Next gives, on dicts shaped as
 * json.loads makes them (one and three str keys, one deleted); 0 also on any error. */
static int direct_dict_works(void) {
    int ok = 1;
    for (int shape = 0; shape < 3 && ok; shape++) {
        PyObject *d = PyDict_New();
        if (d == NULL) return 0;
        const char *keys[] = {"function", "inputs", "value_inputs", "extra"};
        int nk = shape == 0 ? 1 : 4;
        for (int j = 0; j < nk && ok; j++) {
            PyObject *v = PyLong_FromLong(1000 + j);
            ok = v != NULL && PyDict_SetItemString(d, keys[j], v) == 0;
            Py_XDECREF(v);
        }
        if (ok && shape == 2) ok = PyDict_DelItemString(d, "inputs") == 0;
        Py_ssize_t ne, pos = 0, i = 0;
        PyObject *k, *v;
        const DictUnicodeEntry *e = ok ? dict_entries(d, &ne) : NULL;
        ok = ok && e != NULL;
        while (ok && PyDict_Next(d, &pos, &k, &v)) {
            while (i < ne && e[i].me_value == NULL) i++;
            ok = i < ne && e[i].me_key == k && e[i].me_value == v;
            i++;
        }
        while (ok && i < ne && e[i].me_value == NULL) i++;
        ok = ok && i == ne;
        Py_DECREF(d);
    }
    PyErr_Clear();
    return ok;
}
#endif

static inline uint64_t row_bits(PyObject *rows, long obj, int n, int *slow) {
    PyObject *row;
    if (PyList_CheckExact(rows)) {
        if (obj >= PyList_GET_SIZE(rows)) goto bad;
        row = PyList_GET_ITEM(rows, obj);
    } else if (PyTuple_CheckExact(rows)) {
        if (obj >= PyTuple_GET_SIZE(rows)) goto bad;
        row = PyTuple_GET_ITEM(rows, obj);
    } else
        goto bad;
    if (!PyList_CheckExact(row) && !PyTuple_CheckExact(row)) goto bad;
    uint64_t bits = 0;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(row);
    PyObject **items = PySequence_Fast_ITEMS(row);
    for (Py_ssize_t j = 0; j < m; j++) {
        if (!PyLong_CheckExact(items[j])) goto bad;
        long x = PyLong_AsLong(items[j]);
        if (x < 0 || x >= n) {
            PyErr_Clear();
            goto bad;
        }
        bits |= (uint64_t)1 << x;
    }
    return bits;
bad:
    *slow = 1;
    return 0;
}

/* One node list's fields, read from its dicts before anything is judged or run. */
typedef struct {
    Py_ssize_t n; /* nodes; 0 when the list was found irregular while reading (slow) */
    PyObject *fn[MAX_NODES], *ins[MAX_NODES], *side[MAX_NODES]; /* borrowed */
} Fields;

/* Read every node's fields (borrowed; nothing may run Python code until they are used) and
 * prefetch the objects they point to: the nodes' objects are scattered in memory, and loads of
 * independent nodes overlap in a short loop.  Returns OK, or SLOW on anything irregular. */
static inline int gather(PyObject *nodes, Fields *f) {
    f->n = 0;
    if (!PyList_CheckExact(nodes)) return SLOW;
    Py_ssize_t n = PyList_GET_SIZE(nodes);
    if (n == 0 || n > MAX_NODES) return SLOW;
    PyObject **items = ((PyListObject *)nodes)->ob_item;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (read_node(items[i], &f->fn[i], &f->ins[i], &f->side[i])) return SLOW;
        /* a short string's hash and characters may straddle two cache lines */
        __builtin_prefetch((const char *)f->fn[i] + 16);
        __builtin_prefetch((const char *)f->fn[i] + 56);
        __builtin_prefetch(f->ins[i]);
        __builtin_prefetch(f->side[i]);
    }
    f->n = n;
    return OK;
}

/* The answer of gathered fields on a bound scene: a new reference to the answer string,
 * None (invalid execution) or the SLOW sentinel; NULL only on a Python error. */
static PyObject *run_fields(const Fields *f, const Scene *sc) {
    int64_t val[MAX_NODES];
    int out_t[MAX_NODES];
    long depth[MAX_NODES], size[MAX_NODES];
    int invalid = 0;
    val[0] = 0;
    out_t[0] = 0;
    Py_ssize_t n = f->n;
    if (n == 0) goto slow;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *fn = f->fn[i], *ins = f->ins[i], *side = f->side[i];
        if (!PyUnicode_CheckExact(fn)) goto slow;
        int opk = table_find(&g_fn_table, fn);
        if (opk < 0) goto slow_err;
        const Op *op = &g_ops[opk];
        /* inputs: a list (or tuple) of exact ints, each an earlier node of the right type */
        Py_ssize_t m = 0;
        PyObject **ints = NULL;
        if (ins != NULL) {
            if (!PyList_CheckExact(ins) && !PyTuple_CheckExact(ins)) goto slow;
            m = PySequence_Fast_GET_SIZE(ins);
            ints = PySequence_Fast_ITEMS(ins);
        }
        if (m != op->n_in) goto slow;
        long in[MAX_ARITY] = {0, 0}, d = 1, z = 1;
        for (Py_ssize_t j = 0; j < m; j++) {
            long x = node_index(ints[j]);
            if (x < 0 || x >= i) goto slow;
            if (!g_compat[out_t[x]][op->in_t[j]]) goto slow;
            in[j] = x;
            if (depth[x] >= d) d = depth[x] + 1;
            z += size[x];
        }
        if (d > g_max_depth || (z > g_max_expanded && z > i + 1)) goto slow;
        depth[i] = d;
        size[i] = z;
        out_t[i] = op->out_t;
        /* side inputs: none, or exactly one known word */
        long word = 0;
        if (side != NULL && side != Py_None) {
            if (!PyList_CheckExact(side) && !PyTuple_CheckExact(side)) goto slow;
            Py_ssize_t ns = PySequence_Fast_GET_SIZE(side);
            if (ns != (op->side_t >= 0)) goto slow;
            if (ns) {
                PyObject *w = PySequence_Fast_ITEMS(side)[0];
                if (!PyUnicode_CheckExact(w)) goto slow;
                word = table_find(&g_word_table[op->side_t], w);
                if (word < 0 || word >= (op->kind == K_RELATE ? g_nrels : MAX_WORDS)) goto slow_err;
            }
        } else if (op->side_t >= 0)
            goto slow;
        if (invalid) continue; /* an earlier node was invalid: only check the rest */
        int64_t a = val[in[0]], bb = val[in[1]], r = 0;
        switch (op->kind) {
        case K_SCENE: r = (int64_t)sc->all; break;
        case K_FILTER: r = a & (int64_t)sc->vb[op->attr][word]; break;
        case K_UNIQUE:
            /* one object: a nonzero power of two (no popcount: a library call on x86-64's
             * baseline instruction set) */
            if (a == 0 || ((uint64_t)a & ((uint64_t)a - 1)) != 0) invalid = 1;
            else r = __builtin_ctzll((uint64_t)a);
            break;
        case K_RELATE: {
            int bad = 0;
            if (sc->rel[word] == NULL || a < 0 || a >= sc->n) goto slow;
            r = (int64_t)row_bits(sc->rel[word], (long)a, sc->n, &bad);
            if (bad) goto slow;
            break;
        }
        case K_COUNT: r = __builtin_popcountll((uint64_t)a); break;
        case K_EXIST: r = a != 0; break;
        case K_UNION: r = a | bb; break;
        case K_INTERSECT: r = a & bb; break;
        case K_EQ: r = a == bb; break;
        case K_LT: r = a < bb; break;
        case K_GT: r = a > bb; break;
        case K_QUERY:
            if (a < 0 || a >= sc->n) goto slow;
            r = sc->codes[a][op->attr];
            break;
        case K_SAME:
            if (a < 0 || a >= sc->n) goto slow;
            r = (int64_t)(sc->vb[op->attr][sc->codes[a][op->attr]] & ~((uint64_t)1 << a));
            break;
        default: goto slow;
        }
        val[i] = r;
    }
    int t = out_t[n - 1];
    int64_t r = val[n - 1];
    switch (g_answer[t]) {
    case A_BOOL:
        if (invalid) Py_RETURN_NONE;
        return Py_NewRef(r ? g_yes : g_no);
    case A_INTEGER:
        if (invalid) Py_RETURN_NONE;
        if (r < 0 || r >= PyTuple_GET_SIZE(g_numerals)) goto slow;
        return Py_NewRef(PyTuple_GET_ITEM(g_numerals, r));
    case A_WORD: {
        if (invalid) Py_RETURN_NONE;
        PyObject *words = g_attr_words[g_type_attr[t]];
        if (r < 0 || r >= PyTuple_GET_SIZE(words)) goto slow;
        return Py_NewRef(PyTuple_GET_ITEM(words, r));
    }
    default:
        goto slow; /* no answer type: Python decides */
    }
slow_err:
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) return NULL; /* KeyboardInterrupt ... */
        PyErr_Clear();
    }
slow:
    return Py_NewRef(g_slow);
}

/* The answer of one node list on one bound scene (single mode); see run_fields. */
static inline PyObject *answer_one(PyObject *nodes, Bound *b, Py_ssize_t s, int prefetch) {
    Fields f;
    if (!PyList_CheckExact(nodes) || s < 0 || s >= b->n || b->generation != g_generation)
        return Py_NewRef(g_slow);
    if (b->state[s] != BOUND && (b->state[s] == UNFIT || bind_one(b, s) != BOUND))
        return Py_NewRef(g_slow);
    PyObject **items = ((PyListObject *)nodes)->ob_item;
    Py_ssize_t n = PyList_GET_SIZE(nodes);
    if (prefetch && n <= MAX_NODES) /* answer_all prefetched them two questions ago */
        for (Py_ssize_t i = 0; i < n; i++) __builtin_prefetch(items[i]);
    if (gather(nodes, &f)) return Py_NewRef(g_slow);
    return run_fields(&f, &b->data[s]);
}

static int check_bound(PyObject *b) {
    if (!g_configured) {
        PyErr_SetString(PyExc_RuntimeError, "_cnodes: configure() was not called");
        return -1;
    }
    if (!PyObject_TypeCheck(b, &BoundType)) {
        PyErr_SetString(PyExc_TypeError, "_cnodes: expected the result of bind()");
        return -1;
    }
    return 0;
}

/* answer(nodes, bound, scene_index) -> answer string, None or the SLOW sentinel */
static PyObject *answer(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "answer(nodes, bound, scene_index)");
        return NULL;
    }
    if (check_bound(args[1])) return NULL;
    Py_ssize_t s = PyLong_AsSsize_t(args[2]);
    if (s == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) return NULL;
        PyErr_Clear(); /* not an index: Python judges that question */
    }
    return answer_one(args[0], (Bound *)args[1], s, 1);
}

/* answer_all(node_lists, bound, scene_indices) -> (answers, positions answered SLOW) */
static PyObject *answer_all(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "answer_all(node_lists, bound, scene_indices)");
        return NULL;
    }
    if (check_bound(args[1])) return NULL;
    PyObject *lists = PySequence_Fast(args[0], "answer_all: node_lists must be a sequence");
    if (lists == NULL) return NULL;
    PyObject *idx = PySequence_Fast(args[2], "answer_all: scene_indices must be a sequence");
    if (idx == NULL) {
        Py_DECREF(lists);
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(lists);
    PyObject *out = NULL, *slow = NULL, *result = NULL;
    if (PySequence_Fast_GET_SIZE(idx) != n) {
        PyErr_SetString(PyExc_ValueError, "answer_all: one scene index per node list");
        goto done;
    }
    out = PyList_New(n);
    slow = PyList_New(0);
    if (out == NULL || slow == NULL) goto done;
    PyObject **nl = PySequence_Fast_ITEMS(lists), **ix = PySequence_Fast_ITEMS(idx);
    for (Py_ssize_t k = 0; k < n; k++) {
        /* Prefetch ahead, one level deeper per question nearer: the node lists are Python
         * objects scattered in memory, and reading them is most of the time. */
        if (k + 4 < n) __builtin_prefetch(nl[k + 4]);
        if (k + 3 < n && PyList_CheckExact(nl[k + 3]))
            __builtin_prefetch(((PyListObject *)nl[k + 3])->ob_item);
        if (k + 2 < n && PyList_CheckExact(nl[k + 2])) {
            PyListObject *next = (PyListObject *)nl[k + 2];
            Py_ssize_t m = Py_SIZE(next) < MAX_NODES ? Py_SIZE(next) : MAX_NODES;
            for (Py_ssize_t i = 0; i < m; i++) __builtin_prefetch(next->ob_item[i]);
        }
        if (k + 1 < n && PyList_CheckExact(nl[k + 1])) {
            PyListObject *next = (PyListObject *)nl[k + 1];
            Py_ssize_t m = Py_SIZE(next) < MAX_NODES ? Py_SIZE(next) : MAX_NODES;
            for (Py_ssize_t i = 0; i < m; i++)
                if (PyDict_CheckExact(next->ob_item[i])) { /* the keys and their entries */
                    const char *keys = (const char *)((PyDictObject *)next->ob_item[i])->ma_keys;
                    __builtin_prefetch(keys);
                    __builtin_prefetch(keys + 64);
                }
        }
        Py_ssize_t s = PyLong_AsSsize_t(ix[k]);
        if (s == -1 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_Exception)) goto done;
            PyErr_Clear(); /* not an index: Python judges that question */
        }
        PyObject *a = answer_one(nl[k], (Bound *)args[1], s, 0);
        if (a == NULL) goto done;
        if (a == g_slow) {
            PyObject *pos = PyLong_FromSsize_t(k);
            if (pos == NULL || PyList_Append(slow, pos)) {
                Py_XDECREF(pos);
                Py_DECREF(a);
                goto done;
            }
            Py_DECREF(pos);
            Py_DECREF(a);
            a = Py_NewRef(Py_None);
        }
        PyList_SET_ITEM(out, k, a);
    }
    result = PyTuple_Pack(2, out, slow);
done:
    Py_XDECREF(out);
    Py_XDECREF(slow);
    Py_DECREF(lists);
    Py_DECREF(idx);
    return result;
}

/* _same_str(a, b) -> bool: the name comparison itself, for tests (a lookup reaches it only
 * when two strings' hashes are equal, which tests cannot arrange). */
static PyObject *same_str_py(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyUnicode_CheckExact(args[0]) || !PyUnicode_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "_same_str(a, b) takes two str");
        return NULL;
    }
    return PyBool_FromLong(same_str(args[0], args[1]));
}

static PyMethodDef methods[] = {
    {"_same_str", (PyCFunction)(void (*)(void))same_str_py, METH_FASTCALL,
     "_same_str(a, b) -> whether the module takes two str for the same name (tests)."},
    {"configure", configure, METH_O, "configure(spec): the operation table, from Python."},
    {"bind", bind, METH_O, "bind(scenes) -> Bound: scenes bound on first use."},
    {"answer", (PyCFunction)(void (*)(void))answer, METH_FASTCALL,
     "answer(nodes, bound, scene_index) -> answer, None (invalid) or the slow sentinel."},
    {"answer_all", (PyCFunction)(void (*)(void))answer_all, METH_FASTCALL,
     "answer_all(node_lists, bound, scene_indices) -> (answers, positions left to Python)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cnodes",
    "CLEVR node lists answered in C (see reasoning/executor/compiled.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__cnodes(void) {
    if (PyType_Ready(&BoundType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    PyObject *kinds = PyTuple_New(K_NKINDS);
    if (kinds == NULL) goto fail;
    for (int k = 0; k < K_NKINDS; k++) {
        PyObject *s = PyUnicode_FromString(KIND_NAMES[k]);
        if (s == NULL) {
            Py_DECREF(kinds);
            goto fail;
        }
        PyTuple_SET_ITEM(kinds, k, s);
    }
    if (PyModule_AddObject(m, "KINDS", kinds) < 0) {
        Py_DECREF(kinds);
        goto fail;
    }
    if (PyModule_AddIntConstant(m, "MAX_NODES", MAX_NODES) < 0 ||
        PyModule_AddIntConstant(m, "MAX_OBJECTS", MAX_OBJECTS) < 0 ||
        PyModule_AddIntConstant(m, "MAX_ARITY", MAX_ARITY) < 0 ||
        PyModule_AddIntConstant(m, "MAX_ATTRS", MAX_ATTRS) < 0 ||
        PyModule_AddIntConstant(m, "MAX_WORDS", MAX_WORDS) < 0 ||
        PyModule_AddIntConstant(m, "MAX_RELS", MAX_RELS) < 0)
        goto fail;
    find_small_ints();
#ifdef DIRECT_DICT
    g_direct_dict = 1;
    g_direct_dict = direct_dict_works();
#endif
    g_objects_name = PyUnicode_InternFromString("objects");
    g_relationships_name = PyUnicode_InternFromString("relationships");
    if (g_objects_name == NULL || g_relationships_name == NULL) goto fail;
    Py_INCREF(&BoundType);
    if (PyModule_AddObject(m, "Bound", (PyObject *)&BoundType) < 0) {
        Py_DECREF(&BoundType);
        goto fail;
    }
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
