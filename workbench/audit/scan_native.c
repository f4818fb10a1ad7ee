/* The entry scan's hashing loops in C: what `scan.packed_leaves` and `scan.levels_of` compute, without a
 * Python call per SHA-256 (a million entries are three million of them, and in Python each costs more in
 * call overhead than in hashing).
 *
 * Only the loops are here; the hashing is OpenSSL's (libcrypto, already loaded by Python's hashlib), and
 * every decision stays as `scan.py` states it: this module must return exactly what the Python functions
 * return for the same rows, which tests/audit/test_scan_native.py checks on logs with hostile fields. It is
 * optional: `scan.py` falls back to the Python functions when it is not built.
 *
 * Built by `make setup` (packaging/build-native.sh: cc, Python's headers, libcrypto), into this folder.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init/Update/Final: no EVP fetch per call */
#include <Python.h>
#include <openssl/sha.h>
#include <string.h>

#define HASH 32
static const char HEX[] = "0123456789abcdef";
static const char PREV_KEY[] = "\",\"prev\":\"";
#define PREV_KEY_LEN (sizeof(PREV_KEY) - 1)

/* OpenSSL 3's one-shot SHA256() looks the digest up by name on every call (EVP_Q_digest), which costs more
 * than hashing a small input; the low-level functions hash directly (with SHA-NI where the CPU has it). */
static void sha256(const void *data, size_t n, unsigned char *out) {
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, data, n);
    SHA256_Final(out, &ctx);
}

static void to_hex(const unsigned char *in, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = HEX[in[i] >> 4];
        out[2 * i + 1] = HEX[in[i] & 15];
    }
}

/* packed_leaves(rows, last) -> list[bytes] | None
 *
 * rows: the tuples of scan.PACKED_SQL (input with one 0x01 placeholder, payload, prev, hash), all bytes.
 * For each row: the input with its first 0x01 replaced by hex(sha256(payload)) + '","prev":"' + hex(prev)
 * (or unchanged when it holds none, as bytes.replace leaves it), hashed: the leaf. None unless every leaf
 * equals the row's stored hash, the first prev equals `last` and every later prev the hash before it, and
 * every value is bytes (as in Python, where anything else raises TypeError and gives None). */
static PyObject *packed_leaves(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *rows, *last;
    if (!PyArg_ParseTuple(args, "O!O", &PyList_Type, &rows, &last))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(rows);
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    char small[1024];
    char *buf = small;
    size_t cap = sizeof(small);
    const char *expected_prev = NULL; /* the previous row's stored hash */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 4)
            goto mismatch;
        PyObject *input = PyTuple_GET_ITEM(row, 0), *payload = PyTuple_GET_ITEM(row, 1);
        PyObject *prev = PyTuple_GET_ITEM(row, 2), *stored = PyTuple_GET_ITEM(row, 3);
        if (!PyBytes_CheckExact(input) || !PyBytes_CheckExact(payload) || !PyBytes_CheckExact(prev) ||
            !PyBytes_CheckExact(stored))
            goto mismatch;
        const char *prev_bytes = PyBytes_AS_STRING(prev);
        Py_ssize_t prev_len = PyBytes_GET_SIZE(prev);
        if (i == 0) {
            if (!PyBytes_Check(last) || PyBytes_GET_SIZE(last) != prev_len ||
                memcmp(PyBytes_AS_STRING(last), prev_bytes, (size_t)prev_len) != 0)
                goto mismatch;
        } else if (prev_len != HASH || memcmp(prev_bytes, expected_prev, HASH) != 0) {
            goto mismatch;
        }
        if (PyBytes_GET_SIZE(stored) != HASH)
            goto mismatch;
        unsigned char payload_hash[HASH];
        sha256(PyBytes_AS_STRING(payload), (size_t)PyBytes_GET_SIZE(payload), payload_hash);
        const char *in = PyBytes_AS_STRING(input);
        size_t in_len = (size_t)PyBytes_GET_SIZE(input);
        const char *mark = memchr(in, 1, in_len);
        unsigned char leaf[HASH];
        if (mark == NULL) {
            sha256(in, in_len, leaf);
        } else {
            size_t middle = 2 * HASH + PREV_KEY_LEN + 2 * (size_t)prev_len;
            size_t need = in_len - 1 + middle;
            if (need > cap) {
                char *bigger = PyMem_Realloc(buf == small ? NULL : buf, need);
                if (bigger == NULL) {
                    Py_DECREF(out);
                    if (buf != small)
                        PyMem_Free(buf);
                    return PyErr_NoMemory();
                }
                buf = bigger;
                cap = need;
            }
            size_t head = (size_t)(mark - in), at = head;
            memcpy(buf, in, head);
            to_hex(payload_hash, HASH, buf + at);
            at += 2 * HASH;
            memcpy(buf + at, PREV_KEY, PREV_KEY_LEN);
            at += PREV_KEY_LEN;
            to_hex((const unsigned char *)prev_bytes, (size_t)prev_len, buf + at);
            at += 2 * (size_t)prev_len;
            memcpy(buf + at, mark + 1, in_len - head - 1);
            sha256(buf, need, leaf);
        }
        const char *stored_bytes = PyBytes_AS_STRING(stored);
        if (memcmp(leaf, stored_bytes, HASH) != 0)
            goto mismatch;
        expected_prev = stored_bytes;
        Py_INCREF(stored); /* equal to the leaf: the stored object is the leaf */
        PyList_SET_ITEM(out, i, stored);
    }
    if (buf != small)
        PyMem_Free(buf);
    return out;
mismatch:
    if (buf != small)
        PyMem_Free(buf);
    Py_DECREF(out);
    Py_RETURN_NONE;
}

/* levels_of(leaves) -> list[list[bytes]]: as scan.levels_of (RFC 6962's left-balanced tree; an unpaired
 * last node is carried up unchanged). Every leaf must be 32 bytes. */
static PyObject *levels_of(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *leaves;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &leaves))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(leaves);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *leaf = PyList_GET_ITEM(leaves, i);
        if (!PyBytes_CheckExact(leaf) || PyBytes_GET_SIZE(leaf) != HASH) {
            PyErr_SetString(PyExc_ValueError, "every leaf must be 32 bytes");
            return NULL;
        }
    }
    PyObject *levels = PyList_New(0);
    if (levels == NULL || PyList_Append(levels, leaves) < 0)
        goto fail;
    PyObject *level = leaves;
    unsigned char pair[1 + 2 * HASH];
    pair[0] = 1;
    while (PyList_GET_SIZE(level) > 1) {
        Py_ssize_t size = PyList_GET_SIZE(level), half = size / 2;
        PyObject *up = PyList_New(half + (size & 1));
        if (up == NULL)
            goto fail;
        for (Py_ssize_t j = 0; j < half; j++) {
            memcpy(pair + 1, PyBytes_AS_STRING(PyList_GET_ITEM(level, 2 * j)), HASH);
            memcpy(pair + 1 + HASH, PyBytes_AS_STRING(PyList_GET_ITEM(level, 2 * j + 1)), HASH);
            PyObject *node = PyBytes_FromStringAndSize(NULL, HASH);
            if (node == NULL) {
                Py_DECREF(up);
                goto fail;
            }
            sha256(pair, sizeof(pair), (unsigned char *)PyBytes_AS_STRING(node));
            PyList_SET_ITEM(up, j, node);
        }
        if (size & 1) {
            PyObject *carried = PyList_GET_ITEM(level, size - 1);
            Py_INCREF(carried);
            PyList_SET_ITEM(up, half, carried);
        }
        int appended = PyList_Append(levels, up);
        Py_DECREF(up);
        if (appended < 0)
            goto fail;
        level = up; /* levels holds it */
    }
    return levels;
fail:
    Py_XDECREF(levels);
    return NULL;
}

static PyMethodDef methods[] = {
    {"packed_leaves", packed_leaves, METH_VARARGS, "The leaf hashes of PACKED_SQL rows, or None (see scan.py)."},
    {"levels_of", levels_of, METH_VARARGS, "Every level of the RFC 6962 tree over 32-byte leaves."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "scan_native", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit_scan_native(void) { return PyModule_Create(&module); }
