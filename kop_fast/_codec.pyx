# cython: language_level=3
"""Compiled Kafka record codec: v2 record batches, legacy message sets,
CRC32C, varints and offset packing.  (The Kafka header <-> Pulsar property
mapping is plain Python in kop_fast.pulsar_payload.)

The pure-Python twin, kop_fast._codec_py, is the readable reference: this
module follows it step for step and must give byte-identical output and the
same accept/reject decisions (the tests run both).  The hot loops work on C
pointers with explicit length checks; every read is bounded by the end of
the buffer or of the enclosing record, so hostile input can only raise
CorruptRecordError.
"""

cimport cython
from cpython.buffer cimport (
    PyBUF_READ,
    PyBUF_SIMPLE,
    PyBuffer_Release,
    PyObject_GetBuffer,
)
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.number cimport PyNumber_Index
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.stdint cimport INT32_MAX, INT64_MAX, INT64_MIN, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, memset

import os
import zlib

import cramjam

# one set of exception classes for both implementations
from kop_fast._codec_py import CorruptRecordError, OffsetOverflowError


cdef extern from *:
    """
    #define kop_add_overflow(a, b, out) __builtin_add_overflow((a), (b), (out))
    #define kop_sub_overflow(a, b, out) __builtin_sub_overflow((a), (b), (out))

    /* Give a type a vectorcall constructor (tp_vectorcall, the documented
     * slot CPython uses for calls of the type object itself).  The generic
     * path, for keyword arguments, calls type.__call__ (tp_call), which does
     * not look at tp_vectorcall. */
    typedef PyObject *(*kop_vectorcallfunc)(PyObject *, PyObject *const *, size_t, PyObject *);
    static void kop_set_type_vectorcall(PyObject *type, kop_vectorcallfunc func)
    {
        ((PyTypeObject *)type)->tp_vectorcall = (vectorcallfunc)func;
    }
    static PyObject *kop_call_type_generic(PyObject *type, PyObject *const *args,
                                          size_t nargsf, PyObject *kwnames)
    {
        Py_ssize_t nargs = PyVectorcall_NARGS(nargsf), nkw, i;
        PyObject *tuple, *kwargs = NULL, *result;
        tuple = PyTuple_New(nargs);
        if (tuple == NULL)
            return NULL;
        for (i = 0; i < nargs; i++) {
            Py_INCREF(args[i]);
            PyTuple_SET_ITEM(tuple, i, args[i]);
        }
        if (kwnames != NULL && (nkw = PyTuple_GET_SIZE(kwnames)) > 0) {
            kwargs = PyDict_New();
            if (kwargs == NULL) {
                Py_DECREF(tuple);
                return NULL;
            }
            for (i = 0; i < nkw; i++) {
                if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) {
                    Py_DECREF(tuple);
                    Py_DECREF(kwargs);
                    return NULL;
                }
            }
        }
        result = Py_TYPE(type)->tp_call(type, tuple, kwargs);
        Py_DECREF(tuple);
        Py_XDECREF(kwargs);
        return result;
    }

    /* Record's allocator, deallocator and attribute descriptors.
     *
     * Allocation: Cython's tp_new sets every object field to None before
     * the decoder overwrites it, three increments and three decrements of
     * None's reference count per record: a chain of dependent
     * read-modify-writes of one memory word that took a sixth of the
     * decoder's own time.  kop_record_new copies a template instance (the
     * vtable pointer and whatever else Cython put in the struct) and stores
     * the five fields straight into place, with its own free list.  Record
     * is final and never GC-tracked (no_gc), so its memory is plain
     * PyObject_Malloc memory whichever way it was made (Cython's tp_new
     * allocates the same through tp_alloc, tp_free is PyObject_Free), and
     * kop_record_dealloc, installed as Record's tp_dealloc, frees both.
     *
     * Attributes: Cython exposes `cdef readonly object` fields through
     * getset descriptors; key, value and headers get read-only member
     * descriptors (T_OBJECT_EX) at the same offsets instead, which CPython's
     * specializing interpreter turns into LOAD_ATTR_SLOT, a load at a fixed
     * offset, where every getset read is a generic lookup plus a C call.
     *
     * The field offsets are found by looking for sentinel values in a probe
     * instance, so nothing depends on Cython's names for the struct. */
    #if PY_VERSION_HEX >= 0x030C0000
    #define KOP_T_OBJECT_EX Py_T_OBJECT_EX
    #define KOP_READONLY Py_READONLY
    #else
    #include <structmember.h>
    #define KOP_T_OBJECT_EX T_OBJECT_EX
    #define KOP_READONLY READONLY
    #endif
    #define KOP_RECORD_FREELIST 1024
    #define KOP_RECORD_MAX_SIZE 256
    static struct {
        PyTypeObject *type;
        Py_ssize_t size;
        Py_ssize_t off_offset, off_timestamp, off_key, off_value, off_headers;
        char template_[KOP_RECORD_MAX_SIZE];
        int count;
        PyObject *free_[KOP_RECORD_FREELIST];
        PyMemberDef members[3];  /* must outlive the type */
    } kop_rec;

    #define KOP_FIELD(o, off, T) (*(T *)((char *)(o) + (off)))

    static void kop_record_dealloc(PyObject *o)
    {
        PyTypeObject *t = Py_TYPE(o);
        Py_XDECREF(KOP_FIELD(o, kop_rec.off_key, PyObject *));
        Py_XDECREF(KOP_FIELD(o, kop_rec.off_value, PyObject *));
        Py_XDECREF(KOP_FIELD(o, kop_rec.off_headers, PyObject *));
        if (kop_rec.count < KOP_RECORD_FREELIST && t == kop_rec.type)
            kop_rec.free_[kop_rec.count++] = o;
        else
            t->tp_free(o);
        /* PyObject_Init took a reference to a heap type (a Cython build
         * with type specs); a static type is not counted */
        if (t->tp_flags & Py_TPFLAGS_HEAPTYPE)
            Py_DECREF(t);
    }

    /* A new Record holding new references to key, value and headers (none
     * of them NULL). */
    static PyObject *kop_record_new(int64_t offset, int64_t timestamp, PyObject *key,
                                    PyObject *value, PyObject *headers)
    {
        PyObject *o;
        if (kop_rec.count > 0) {
            o = kop_rec.free_[--kop_rec.count];
        } else {
            o = (PyObject *)PyObject_Malloc((size_t)kop_rec.size);
            if (o == NULL)
                return PyErr_NoMemory();
        }
        memcpy((char *)o + sizeof(PyObject), kop_rec.template_ + sizeof(PyObject),
               (size_t)(kop_rec.size - (Py_ssize_t)sizeof(PyObject)));
        PyObject_Init(o, kop_rec.type);
        KOP_FIELD(o, kop_rec.off_offset, int64_t) = offset;
        KOP_FIELD(o, kop_rec.off_timestamp, int64_t) = timestamp;
        Py_INCREF(key);
        KOP_FIELD(o, kop_rec.off_key, PyObject *) = key;
        Py_INCREF(value);
        KOP_FIELD(o, kop_rec.off_value, PyObject *) = value;
        Py_INCREF(headers);
        KOP_FIELD(o, kop_rec.off_headers, PyObject *) = headers;
        return o;
    }

    /* Offset of the first pointer-aligned word after the object header of
     * `probe` that equals `needle`, -1 if none. */
    static Py_ssize_t kop_find_word(PyObject *probe, Py_ssize_t size, const void *needle,
                                    size_t width)
    {
        Py_ssize_t off;
        for (off = (Py_ssize_t)sizeof(PyObject); off + (Py_ssize_t)width <= size;
             off += (Py_ssize_t)sizeof(void *)) {
            if (memcmp((char *)probe + off, needle, width) == 0)
                return off;
        }
        return -1;
    }

    static int kop_set_member(PyTypeObject *t, PyMemberDef *def, const char *name,
                              Py_ssize_t offset, const char *doc)
    {
        PyObject *descr;
        int rc;
        def->name = name;
        def->type = KOP_T_OBJECT_EX;
        def->offset = offset;
        def->flags = KOP_READONLY;
        def->doc = doc;
        descr = PyDescr_NewMember(t, def);
        if (descr == NULL)
            return -1;
        rc = PyDict_SetItemString(t->tp_dict, name, descr);
        Py_DECREF(descr);
        return rc;
    }

    /* `probe`: a Record whose offset, timestamp, key, value and headers are
     * the given distinct sentinels. */
    static int kop_record_setup(PyObject *type, PyObject *probe, int64_t offset,
                                int64_t timestamp, PyObject *key, PyObject *value,
                                PyObject *headers)
    {
        PyTypeObject *t = (PyTypeObject *)type;
        Py_ssize_t size = t->tp_basicsize;
        if (size > KOP_RECORD_MAX_SIZE || t->tp_itemsize != 0 || PyType_IS_GC(t)
                || t->tp_free != PyObject_Free || Py_TYPE(probe) != t || t->tp_dict == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "kop_record_setup: unexpected Record type");
            return -1;
        }
        kop_rec.size = size;
        kop_rec.off_offset = kop_find_word(probe, size, &offset, sizeof offset);
        kop_rec.off_timestamp = kop_find_word(probe, size, &timestamp, sizeof timestamp);
        kop_rec.off_key = kop_find_word(probe, size, &key, sizeof key);
        kop_rec.off_value = kop_find_word(probe, size, &value, sizeof value);
        kop_rec.off_headers = kop_find_word(probe, size, &headers, sizeof headers);
        if (kop_rec.off_offset < 0 || kop_rec.off_timestamp < 0 || kop_rec.off_key < 0
                || kop_rec.off_value < 0 || kop_rec.off_headers < 0) {
            PyErr_SetString(PyExc_RuntimeError, "kop_record_setup: Record field not found");
            return -1;
        }
        memcpy(kop_rec.template_, probe, (size_t)size);
        /* (the fields of the template are never read, only overwritten) */
        KOP_FIELD(kop_rec.template_, kop_rec.off_key, PyObject *) = NULL;
        KOP_FIELD(kop_rec.template_, kop_rec.off_value, PyObject *) = NULL;
        KOP_FIELD(kop_rec.template_, kop_rec.off_headers, PyObject *) = NULL;
        if (kop_set_member(t, &kop_rec.members[0], "key", kop_rec.off_key,
                           "bytes or None") < 0
                || kop_set_member(t, &kop_rec.members[1], "value", kop_rec.off_value,
                                  "bytes or None") < 0
                || kop_set_member(t, &kop_rec.members[2], "headers", kop_rec.off_headers,
                                  "tuple of (str, bytes | None) pairs") < 0)
            return -1;
        PyType_Modified(t);
        kop_rec.type = t;
        t->tp_dealloc = kop_record_dealloc;
        return 0;
    }
    """
    bint kop_add_overflow(int64_t a, int64_t b, int64_t *out) nogil
    bint kop_sub_overflow(int64_t a, int64_t b, int64_t *out) nogil
    ctypedef PyObject *(*kop_vectorcallfunc)(object, PyObject *const *, size_t, PyObject *)
    void kop_set_type_vectorcall(object type, kop_vectorcallfunc func)
    object kop_call_type_generic(object type, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames)
    int kop_record_setup(object type, object probe, int64_t offset, int64_t timestamp,
                         object key, object value, object headers) except -1
    object kop_record_new(int64_t offset, int64_t timestamp, object key, object value,
                          object headers)
    Py_ssize_t PyVectorcall_NARGS(size_t nargsf)
    void PyObject_GC_UnTrack(void *op)


# ---------------------------------------------------------------------------
# constants (mirroring _codec_py)

COMPRESSION_NONE = 0
COMPRESSION_GZIP = 1
COMPRESSION_SNAPPY = 2
COMPRESSION_LZ4 = 3
COMPRESSION_ZSTD = 4
COMPRESSION_NAMES = ("none", "gzip", "snappy", "lz4", "zstd")

MAX_DECOMPRESSED = 64 << 20

cdef enum:
    V2_HEADER_SIZE = 61
    V2_CRC_START = 21
    LOG_OVERHEAD = 12
    V2_MIN_BATCH_LENGTH = 49
    V0_MIN_MESSAGE_SIZE = 14
    V1_MIN_MESSAGE_SIZE = 22
    MIN_RECORD_SIZE = 7
    ATTR_COMPRESSION_MASK = 0x07
    ATTR_TIMESTAMP_TYPE = 0x08
    ATTR_TRANSACTIONAL = 0x10
    ATTR_CONTROL = 0x20
    MIN_DECOMPRESS_GUESS = 65536
    XERIAL_BLOCK_SIZE = 32768
    GZIP_LEVEL = 6
    ZSTD_LEVEL = 3
    # CRC spans at least this long are computed without the GIL
    NOGIL_CRC_BYTES = 262144

cdef bytes _XERIAL_MAGIC = b"\x82SNAPPY\x00"
cdef bytes _XERIAL_HEADER = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01"

cdef object _gzip_decompress_into = cramjam.gzip.decompress_into
cdef object _lz4_decompress_into = cramjam.lz4.decompress_into
cdef object _zstd_decompress_into = cramjam.zstd.decompress_into
cdef object _snappy_raw_len = cramjam.snappy.decompress_raw_len
cdef object _snappy_raw_into = cramjam.snappy.decompress_raw_into
cdef object _snappy_compress_raw = cramjam.snappy.compress_raw
cdef object _gzip_compress = cramjam.gzip.compress
cdef object _zstd_compress = cramjam.zstd.compress
cdef object _Lz4Compressor = cramjam.lz4.Compressor

cdef tuple _EMPTY = ()


cdef int _fail(str msg) except -1:
    raise CorruptRecordError(msg)


# ---------------------------------------------------------------------------
# the codec itself, one concern per include file.  `include` is textual: the
# parts compile into this one module as if written here, in this order (each
# part uses only this file's declarations and the parts before it).

include "_codec_primitives.pxi"   # big-endian loads/stores, CRC32C, varints
include "_codec_offsets.pxi"      # OffsetLayout, pack_offset, unpack_offset
include "_codec_records.pxi"      # Record, RecordBatch
include "_codec_compression.pxi"  # compression, bounded decompression
include "_codec_decode.pxi"       # decode_batches, verify_batches, batch_infos, patch_base_offset
include "_codec_encode.pxi"       # encode_batch, split_batch
