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
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.stdint cimport INT32_MAX, INT64_MAX, INT64_MIN, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy

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
    """
    bint kop_add_overflow(int64_t a, int64_t b, int64_t *out) nogil
    bint kop_sub_overflow(int64_t a, int64_t b, int64_t *out) nogil
    ctypedef PyObject *(*kop_vectorcallfunc)(object, PyObject *const *, size_t, PyObject *)
    void kop_set_type_vectorcall(object type, kop_vectorcallfunc func)
    object kop_call_type_generic(object type, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames)
    Py_ssize_t PyVectorcall_NARGS(size_t nargsf)


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
