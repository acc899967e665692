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
# big-endian loads and stores

cdef inline int64_t _be64(const uint8_t *p) noexcept nogil:
    return <int64_t>(
        (<uint64_t>p[0] << 56) | (<uint64_t>p[1] << 48) | (<uint64_t>p[2] << 40)
        | (<uint64_t>p[3] << 32) | (<uint64_t>p[4] << 24) | (<uint64_t>p[5] << 16)
        | (<uint64_t>p[6] << 8) | <uint64_t>p[7]
    )


cdef inline uint32_t _be32u(const uint8_t *p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | <uint32_t>p[3]


cdef inline int32_t _be32(const uint8_t *p) noexcept nogil:
    return <int32_t>_be32u(p)


cdef inline int32_t _be16(const uint8_t *p) noexcept nogil:
    return <int32_t>(<short>((<uint32_t>p[0] << 8) | <uint32_t>p[1]))


cdef inline uint32_t _le32u(const uint8_t *p) noexcept nogil:
    return (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | <uint32_t>p[0]


cdef inline void _put_be64(uint8_t *p, int64_t v) noexcept nogil:
    cdef uint64_t u = <uint64_t>v
    p[0] = <uint8_t>(u >> 56)
    p[1] = <uint8_t>(u >> 48)
    p[2] = <uint8_t>(u >> 40)
    p[3] = <uint8_t>(u >> 32)
    p[4] = <uint8_t>(u >> 24)
    p[5] = <uint8_t>(u >> 16)
    p[6] = <uint8_t>(u >> 8)
    p[7] = <uint8_t>u


cdef inline void _put_be32(uint8_t *p, int64_t v) noexcept nogil:
    cdef uint32_t u = <uint32_t>v
    p[0] = <uint8_t>(u >> 24)
    p[1] = <uint8_t>(u >> 16)
    p[2] = <uint8_t>(u >> 8)
    p[3] = <uint8_t>u


cdef inline void _put_be16(uint8_t *p, int64_t v) noexcept nogil:
    cdef uint32_t u = <uint32_t>v
    p[0] = <uint8_t>(u >> 8)
    p[1] = <uint8_t>u


# ---------------------------------------------------------------------------
# CRC32C

kop_crc32c_init(1 if os.environ.get("KOP_FAST_CRC32C_SOFTWARE") == "1" else 0)

#: True when crc32c() uses the SSE4.2 instruction (set
#: KOP_FAST_CRC32C_SOFTWARE=1 before import to force the table code).
CRC32C_HARDWARE = bool(kop_crc32c_use_hw)


cdef inline uint32_t _crc_span(const uint8_t *p, Py_ssize_t n) noexcept:
    """Finished CRC32C of n bytes (the GIL is dropped for long spans)."""
    cdef uint32_t reg
    if n >= NOGIL_CRC_BYTES:
        with nogil:
            reg = kop_crc32c_update(0xFFFFFFFFu, p, <size_t>n)
    else:
        reg = kop_crc32c_update(0xFFFFFFFFu, p, <size_t>n)
    return reg ^ 0xFFFFFFFFu


cdef uint32_t _crc_arg(object crc) except? 0xFFFFFFFF:
    cdef object value = PyNumber_Index(crc)
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"crc must be an unsigned 32-bit value, got {value}")
    return <uint32_t>value


cdef object _crc_generic(object data, object crc, int which):
    cdef Py_buffer view
    cdef uint32_t reg = _crc_arg(crc) ^ 0xFFFFFFFFu
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        with nogil:
            if which == 0:
                reg = kop_crc32c_update(reg, <const unsigned char *>view.buf, <size_t>view.len)
            elif which == 1:
                reg = kop_crc32c_sw(reg, <const unsigned char *>view.buf, <size_t>view.len)
            else:
                reg = kop_crc32c_update_hw(reg, <const unsigned char *>view.buf, <size_t>view.len)
    finally:
        PyBuffer_Release(&view)
    return reg ^ 0xFFFFFFFFu


def crc32c(data, crc=0):
    """CRC32C of ``data``, continuing from ``crc`` (the value returned for the
    preceding bytes): ``crc32c(b, crc32c(a)) == crc32c(a + b)``."""
    return _crc_generic(data, crc, 0)


def _crc32c_sw(data, crc=0):
    """crc32c() with the slicing-by-8 table code, whatever the CPU."""
    return _crc_generic(data, crc, 1)


def _crc32c_hw(data, crc=0):
    """crc32c() with the SSE4.2 code; RuntimeError where the CPU lacks it."""
    if not kop_crc32c_hw_available():
        raise RuntimeError("this CPU has no SSE4.2 crc32 instruction")
    return _crc_generic(data, crc, 2)


# ---------------------------------------------------------------------------
# varints

cdef inline const uint8_t *_varint32(const uint8_t *p, const uint8_t *end, int64_t *out) noexcept nogil:
    """Zigzag varint of at most 5 bytes (a Kafka int32 varint); NULL when
    truncated or too long."""
    cdef uint32_t z, b
    cdef int shift
    if p >= end:
        return NULL
    b = p[0]
    if b < 0x80:
        out[0] = <int64_t>(<int32_t>((b >> 1) ^ (0u - (b & 1u))))
        return p + 1
    z = b & 0x7Fu
    shift = 7
    p += 1
    while True:
        if p >= end:
            return NULL
        b = p[0]
        p += 1
        if shift == 28 and b > 0x0Fu:
            return NULL
        z |= (b & 0x7Fu) << shift
        if b < 0x80:
            break
        shift += 7
    out[0] = <int64_t>(<int32_t>((z >> 1) ^ (0u - (z & 1u))))
    return p


cdef inline const uint8_t *_varlong(const uint8_t *p, const uint8_t *end, int64_t *out) noexcept nogil:
    """Zigzag varint of at most 10 bytes (a Kafka varlong); NULL when
    truncated or too long."""
    cdef uint64_t z = 0, b
    cdef int shift = 0
    while True:
        if p >= end:
            return NULL
        b = p[0]
        p += 1
        if shift == 63 and b > 1:
            return NULL
        z |= (b & 0x7Fu) << shift
        if b < 0x80:
            break
        shift += 7
    out[0] = <int64_t>((z >> 1) ^ (0u - (z & 1u)))
    return p


cdef inline uint64_t _zigzag(int64_t v) noexcept nogil:
    return (<uint64_t>v << 1) ^ <uint64_t>(v >> 63)


cdef inline Py_ssize_t _uvarint_size(uint64_t z) noexcept nogil:
    cdef Py_ssize_t n = 1
    while z >= 0x80:
        z >>= 7
        n += 1
    return n


cdef inline uint8_t *_put_uvarint(uint8_t *p, uint64_t z) noexcept nogil:
    while z >= 0x80:
        p[0] = <uint8_t>((z & 0x7F) | 0x80)
        p += 1
        z >>= 7
    p[0] = <uint8_t>z
    return p + 1


def encode_varint(n):
    """Zigzag varint (Kafka's varlong encoding) of a signed 64-bit integer."""
    cdef int overflow = 0
    cdef object value = PyNumber_Index(n)
    cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
    cdef uint8_t out[10]
    if overflow:
        raise OverflowError(f"varint value {value} does not fit a signed 64-bit integer")
    cdef uint8_t *end = _put_uvarint(out, _zigzag(v))
    return PyBytes_FromStringAndSize(<char *>out, end - out)


def decode_varint(buf, pos=0):
    """Decode the zigzag varint (up to 64 bits) at ``buf[pos:]``; returns
    ``(value, position after the varint)``."""
    cdef Py_buffer view
    cdef int64_t value = 0
    cdef const uint8_t *start
    cdef const uint8_t *p
    cdef object position = PyNumber_Index(pos)
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        if position < 0 or position > view.len:
            _fail(f"varint position {position} outside a {view.len}-byte buffer")
        start = <const uint8_t *>view.buf
        p = _varlong(start + <Py_ssize_t>position, start + view.len, &value)
        if p == NULL:
            _fail("truncated or overlong varint")
        return value, <Py_ssize_t>(p - start)
    finally:
        PyBuffer_Release(&view)


# ---------------------------------------------------------------------------
# offset layout

cdef OffsetLayout _offset_layout


cdef class OffsetLayout:
    """How a Kafka offset packs a Pulsar position.

    ``offset = ledger_id << (entry_bits + index_bits) | entry_id << index_bits
    | batch_index``, so offsets sort exactly like Pulsar MessageIds (ledger,
    then entry, then batch index).  Nothing wraps: a value that does not fit
    raises OffsetOverflowError.
    """

    def __init__(self, ledger_bits=28, entry_bits=21, index_bits=14):
        cdef object lb = PyNumber_Index(ledger_bits)
        cdef object eb = PyNumber_Index(entry_bits)
        cdef object ib = PyNumber_Index(index_bits)
        if lb < 1 or eb < 1 or ib < 0:
            raise ValueError(
                "offset layout needs ledger_bits >= 1, entry_bits >= 1, index_bits >= 0; "
                f"got {lb}/{eb}/{ib}"
            )
        if lb + eb + ib > 63:
            raise ValueError(
                f"offset layout {lb}+{eb}+{ib} = {lb + eb + ib} bits exceeds the 63 bits "
                "of a non-negative Kafka offset"
            )
        self.ledger_bits = lb
        self.entry_bits = eb
        self.index_bits = ib
        self.max_ledger_id = (1LL << self.ledger_bits) - 1
        self.max_entry_id = (1LL << self.entry_bits) - 1
        self.max_index = (1LL << self.index_bits) - 1
        self.max_offset = (1LL << (self.ledger_bits + self.entry_bits + self.index_bits)) - 1

    @property
    def total_bits(self):
        return self.ledger_bits + self.entry_bits + self.index_bits

    cdef int64_t _pack(self, object ledger_id, object entry_id, object batch_index) except? -1:
        cdef int64_t ledger = _layout_field(ledger_id, self.max_ledger_id, "ledger id",
                                            self.ledger_bits, "ledger")
        cdef int64_t entry = _layout_field(entry_id, self.max_entry_id, "entry id",
                                           self.entry_bits, "entry")
        cdef int64_t index = _layout_field(batch_index, self.max_index, "batch index",
                                           self.index_bits, "index")
        return (ledger << (self.entry_bits + self.index_bits)) | (entry << self.index_bits) | index

    def pack(self, ledger_id, entry_id, batch_index=0):
        return self._pack(ledger_id, entry_id, batch_index)

    def unpack(self, offset):
        cdef object value = offset if type(offset) is int else PyNumber_Index(offset)
        cdef int overflow = 0
        cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow or v < 0 or v > self.max_offset:
            raise OffsetOverflowError(
                f"offset {value} is outside the offset layout "
                f"{self.ledger_bits}/{self.entry_bits}/{self.index_bits} (0..{self.max_offset})"
            )
        return (
            v >> (self.entry_bits + self.index_bits),
            (v >> self.index_bits) & self.max_entry_id,
            v & self.max_index,
        )

    def __eq__(self, other):
        try:
            return (self.ledger_bits, self.entry_bits, self.index_bits) == (
                other.ledger_bits, other.entry_bits, other.index_bits
            )
        except AttributeError:
            return NotImplemented

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self):
        return hash((self.ledger_bits, self.entry_bits, self.index_bits))

    def __repr__(self):
        return (
            f"OffsetLayout(ledger_bits={self.ledger_bits}, entry_bits={self.entry_bits}, "
            f"index_bits={self.index_bits})"
        )

    def __reduce__(self):
        return (OffsetLayout, (self.ledger_bits, self.entry_bits, self.index_bits))


cdef int64_t _layout_field(object value, int64_t maximum, str what, int bits, str kind) except? -1:
    cdef int overflow = 0
    cdef long long v
    if type(value) is not int:
        value = PyNumber_Index(value)
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or v < 0 or v > maximum:
        raise OffsetOverflowError(
            f"{what} {value} does not fit the {bits} {kind} bits of the offset layout "
            f"(0..{maximum})"
        )
    return v


DEFAULT_OFFSET_LAYOUT = OffsetLayout(28, 21, 14)
_offset_layout = DEFAULT_OFFSET_LAYOUT


def set_offset_layout(layout):
    """Make ``layout`` the one pack_offset()/unpack_offset() use."""
    global _offset_layout
    if not isinstance(layout, OffsetLayout):
        raise TypeError(f"expected an OffsetLayout, got {type(layout).__name__}")
    _offset_layout = <OffsetLayout>layout


def get_offset_layout():
    return _offset_layout


def pack_offset(ledger_id, entry_id, batch_index=0):
    return _offset_layout._pack(ledger_id, entry_id, batch_index)


def unpack_offset(offset):
    return _offset_layout.unpack(offset)


# ---------------------------------------------------------------------------
# records and batches

cdef int64_t _as_int64(object value, str what) except? -1:
    """operator.index(value) as a C int64 (OverflowError outside), refusing
    floats and other objects Cython's own conversion would truncate."""
    cdef int overflow = 0
    cdef long long v
    if type(value) is not int:
        value = PyNumber_Index(value)
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow:
        raise OverflowError(f"{what} {value} does not fit a signed 64-bit integer")
    return v


cdef object _check_payload(object value, str what):
    if value is None or type(value) is bytes:
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"record {what} must be bytes or None, not {type(value).__name__}")


cdef tuple _check_headers(object headers):
    cdef object header, key, value
    cdef bint exact = type(headers) is tuple
    if exact:
        for header in <tuple>headers:
            if not (type(header) is tuple and len(<tuple>header) == 2
                    and type((<tuple>header)[0]) is str
                    and ((<tuple>header)[1] is None or type((<tuple>header)[1]) is bytes)):
                exact = False
                break
        if exact:
            return <tuple>headers
    cdef list out = []
    for header in headers:
        try:
            key, value = header
        except (TypeError, ValueError):
            raise TypeError("each header must be a (str, bytes | None) pair") from None
        if type(key) is not str:
            raise TypeError(f"header key must be str, not {type(key).__name__}")
        out.append((key, _check_payload(value, "header value")))
    return tuple(out)


@cython.freelist(1024)
@cython.no_gc
cdef class Record:
    """One Kafka record: ``Record(offset, timestamp, key, value, headers=())``.

    Tuple-like (iterable, indexable, equal to the plain tuple of its five
    fields and to the pure twin's Record).  ``headers`` is a tuple of
    ``(str, bytes | None)`` pairs.
    """

    # no_gc is safe: every field is an int, bytes/None or a tuple of
    # (str, bytes/None) pairs (validated below), so no reference cycle can
    # run through a Record; skipping GC tracking keeps decoding cheap.

    def __init__(self, offset, timestamp, key, value, headers=()):
        self.offset = _as_int64(offset, "record offset")
        self.timestamp = _as_int64(timestamp, "record timestamp")
        self.key = _check_payload(key, "key")
        self.value = _check_payload(value, "value")
        self.headers = _check_headers(headers)

    cdef tuple _astuple(self):
        return (self.offset, self.timestamp, self.key, self.value, self.headers)

    def __len__(self):
        return 5

    def __iter__(self):
        return iter(self._astuple())

    def __getitem__(self, index):
        return self._astuple()[index]

    def __eq__(self, other):
        cdef Record rec
        if type(other) is Record:
            rec = <Record>other
            return (
                self.offset == rec.offset
                and self.timestamp == rec.timestamp
                and self.key == rec.key
                and self.value == rec.value
                and self.headers == rec.headers
            )
        if isinstance(other, tuple):
            return self._astuple() == other
        return NotImplemented

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self):
        return hash(self._astuple())

    def __repr__(self):
        return (
            f"Record(offset={self.offset!r}, timestamp={self.timestamp!r}, key={self.key!r}, "
            f"value={self.value!r}, headers={self.headers!r})"
        )

    def __reduce__(self):
        return (Record, self._astuple())


cdef object _record_vectorcall(object type, PyObject *const *args, size_t nargsf,
                               PyObject *kwnames):
    """Record(offset, timestamp, key, value[, headers]) without building an
    argument tuple or going through __new__ + __init__: encode callers build
    one Record per message, so the constructor is on the hot path."""
    cdef Py_ssize_t nargs = PyVectorcall_NARGS(nargsf)
    cdef Record rec
    if kwnames != NULL or nargs < 4 or nargs > 5:
        return kop_call_type_generic(type, args, nargsf, kwnames)
    rec = Record.__new__(Record)
    rec.offset = _as_int64(<object>args[0], "record offset")
    rec.timestamp = _as_int64(<object>args[1], "record timestamp")
    rec.key = _check_payload(<object>args[2], "key")
    rec.value = _check_payload(<object>args[3], "value")
    rec.headers = _check_headers(<object>args[4]) if nargs == 5 else _EMPTY
    return rec


kop_set_type_vectorcall(Record, <kop_vectorcallfunc>_record_vectorcall)


cdef class RecordBatch:
    """A decoded record batch (v2) or legacy message (magic 0/1).

    ``records`` holds Records with absolute offsets and timestamps.  For a
    log-append-time batch every record's timestamp is the batch's
    max_timestamp, as Kafka clients report it.
    """

    def __init__(self, base_offset, last_offset_delta, partition_leader_epoch, magic,
                 attributes, compression, timestamp_type, is_transactional, is_control,
                 base_timestamp, max_timestamp, producer_id, producer_epoch, base_sequence,
                 records):
        self.base_offset = base_offset
        self.last_offset_delta = last_offset_delta
        self.partition_leader_epoch = partition_leader_epoch
        self.magic = magic
        self.attributes = attributes
        self.compression = compression
        self.timestamp_type = timestamp_type
        self.is_transactional = is_transactional
        self.is_control = is_control
        self.base_timestamp = base_timestamp
        self.max_timestamp = max_timestamp
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.base_sequence = base_sequence
        self.records = list(records)

    @property
    def next_offset(self):
        """The offset after this batch's last offset."""
        return self.base_offset + self.last_offset_delta + 1

    cdef tuple _fields(self):
        return (
            self.base_offset, self.last_offset_delta, self.partition_leader_epoch, self.magic,
            self.attributes, self.compression, self.timestamp_type, self.is_transactional,
            self.is_control, self.base_timestamp, self.max_timestamp, self.producer_id,
            self.producer_epoch, self.base_sequence, self.records,
        )

    def __eq__(self, other):
        if not isinstance(other, RecordBatch):
            return NotImplemented
        return self._fields() == (<RecordBatch>other)._fields()

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None

    def __repr__(self):
        names = (
            "base_offset", "last_offset_delta", "partition_leader_epoch", "magic",
            "attributes", "compression", "timestamp_type", "is_transactional", "is_control",
            "base_timestamp", "max_timestamp", "producer_id", "producer_epoch",
            "base_sequence",
        )
        fields = ", ".join(f"{n}={v!r}" for n, v in zip(names, self._fields()))
        return f"RecordBatch({fields}, records=<{len(self.records)} records>)"


cdef inline Record _new_record(int64_t offset, int64_t timestamp, object key, object value,
                               tuple headers):
    cdef Record rec = Record.__new__(Record)
    rec.offset = offset
    rec.timestamp = timestamp
    rec.key = key
    rec.value = value
    rec.headers = headers
    return rec


cdef RecordBatch _new_batch(int64_t base_offset, int64_t last_offset_delta,
                            int64_t leader_epoch, int magic, int attributes, int codec,
                            int timestamp_type, bint transactional, bint control,
                            int64_t base_timestamp, int64_t max_timestamp, int64_t producer_id,
                            int64_t producer_epoch, int64_t base_sequence, list records):
    cdef RecordBatch batch = RecordBatch.__new__(RecordBatch)
    batch.base_offset = base_offset
    batch.last_offset_delta = last_offset_delta
    batch.partition_leader_epoch = leader_epoch
    batch.magic = magic
    batch.attributes = attributes
    batch.compression = codec
    batch.timestamp_type = timestamp_type
    batch.is_transactional = transactional
    batch.is_control = control
    batch.base_timestamp = base_timestamp
    batch.max_timestamp = max_timestamp
    batch.producer_id = producer_id
    batch.producer_epoch = producer_epoch
    batch.base_sequence = base_sequence
    batch.records = records
    return batch


# ---------------------------------------------------------------------------
# decompression (bounded)

cdef str _codec_name(int codec):
    return COMPRESSION_NAMES[codec] if 0 <= codec < 5 else str(codec)


cdef uint32_t _rotl32(uint32_t x, int r) noexcept nogil:
    return (x << r) | (x >> (32 - r))


cdef uint32_t _xxh32(const uint8_t *p, Py_ssize_t n, uint32_t seed) noexcept nogil:
    """xxHash32; only used to repair the LZ4 frame header checksum of magic 0
    messages (old Kafka clients hashed the magic bytes too, KAFKA-3160)."""
    cdef uint32_t P1 = 2654435761u, P2 = 2246822519u, P3 = 3266489917u
    cdef uint32_t P4 = 668265263u, P5 = 374761393u
    cdef uint32_t v1, v2, v3, v4, h
    cdef Py_ssize_t pos = 0
    if n >= 16:
        v1 = seed + P1 + P2
        v2 = seed + P2
        v3 = seed
        v4 = seed - P1
        while pos + 16 <= n:
            v1 = _rotl32(v1 + _le32u(p + pos) * P2, 13) * P1
            v2 = _rotl32(v2 + _le32u(p + pos + 4) * P2, 13) * P1
            v3 = _rotl32(v3 + _le32u(p + pos + 8) * P2, 13) * P1
            v4 = _rotl32(v4 + _le32u(p + pos + 12) * P2, 13) * P1
            pos += 16
        h = _rotl32(v1, 1) + _rotl32(v2, 7) + _rotl32(v3, 12) + _rotl32(v4, 18)
    else:
        h = seed + P5
    h += <uint32_t>n
    while pos + 4 <= n:
        h = _rotl32(h + _le32u(p + pos) * P3, 17) * P4
        pos += 4
    while pos < n:
        h = _rotl32(h + <uint32_t>p[pos] * P5, 11) * P1
        pos += 1
    h ^= h >> 15
    h *= P2
    h ^= h >> 13
    h *= P3
    h ^= h >> 16
    return h


cdef object _repair_lz4_header_checksum(const uint8_t *p, Py_ssize_t n, object src):
    """The LZ4 frame with its descriptor checksum (HC) recomputed as the frame
    spec defines it; magic 0 producers computed it over the magic bytes too."""
    cdef Py_ssize_t hc_pos
    cdef bytearray fixed
    cdef uint8_t *q
    if n < 7 or not (p[0] == 0x04 and p[1] == 0x22 and p[2] == 0x4D and p[3] == 0x18):
        return src
    hc_pos = 6 + (8 if p[4] & 0x08 else 0) + (4 if p[4] & 0x01 else 0)
    if hc_pos >= n:
        return src
    fixed = PyByteArray_FromStringAndSize(<char *>p, n)
    q = <uint8_t *>PyByteArray_AS_STRING(fixed)
    q[hc_pos] = <uint8_t>((_xxh32(q + 4, hc_pos - 4, 0) >> 8) & 0xFF)
    return fixed


cdef tuple _decompress_growing(int codec, object fn, object src, Py_ssize_t guess,
                               Py_ssize_t budget):
    """Decompress into a buffer of ``guess`` bytes, growing 4x while the
    output does not fit but never past ``budget``: a bomb fails at the cap
    instead of allocating, and corrupt data fails at once.  Buffers are
    allocated uninitialised: only what cramjam wrote is read."""
    cdef Py_ssize_t size = min(budget, max(guess, 1))
    cdef object out
    while True:
        out = PyByteArray_FromStringAndSize(NULL, size)
        try:
            n = fn(src, out)
        except Exception as exc:
            # cramjam reports a too-small output buffer as an I/O "failed to
            # write whole buffer" error (tests pin this down)
            if "whole buffer" not in str(exc):
                raise CorruptRecordError(f"{_codec_name(codec)} data is corrupt: {exc}") from None
            if size >= budget:
                raise CorruptRecordError(
                    f"{_codec_name(codec)} data decompresses beyond the {budget}-byte limit"
                ) from None
            size = min(budget, size * 4)
            continue
        return out, n


cdef Py_ssize_t _snappy_len(object chunk) except -1:
    try:
        raw = _snappy_raw_len(chunk)
    except Exception as exc:
        raise CorruptRecordError(f"snappy data is corrupt: {exc}") from None
    return raw


cdef tuple _snappy_decompress(const uint8_t *p, Py_ssize_t n, object src, Py_ssize_t budget):
    cdef list chunks = []
    cdef Py_ssize_t total = 0, pos, raw, clen
    cdef object chunk, out, view
    if n >= 16 and memcmp(p, PyBytes_AS_STRING(_XERIAL_MAGIC), 8) == 0:
        # xerial framing (Java clients): 16-byte header, then chunks of
        # int32 length + raw snappy block
        pos = 16
        while pos < n:
            if n - pos < 4:
                _fail("truncated xerial snappy chunk length")
            clen = _be32(p + pos)
            pos += 4
            if clen < 0 or clen > n - pos:
                _fail(f"xerial snappy chunk length {clen} exceeds the data")
            chunk = PyMemoryView_FromMemory(<char *>(p + pos), clen, PyBUF_READ)
            pos += clen
            raw = _snappy_len(chunk)
            chunks.append((chunk, raw))
            total += raw
            if total > budget:
                _fail(f"snappy data decompresses beyond the {budget}-byte limit")
    else:
        raw = _snappy_len(src)
        if raw > budget:
            _fail(f"snappy data decompresses beyond the {budget}-byte limit")
        chunks.append((src, raw))
        total = raw
    out = PyByteArray_FromStringAndSize(NULL, total)
    view = memoryview(out)
    pos = 0
    for chunk, raw in chunks:
        try:
            written = _snappy_raw_into(chunk, view[pos:pos + raw])
        except Exception as exc:
            raise CorruptRecordError(f"snappy data is corrupt: {exc}") from None
        if written != raw:
            _fail("snappy chunk decompressed to a different length than declared")
        pos += raw
    view.release()
    return out, total


cdef tuple _decompress(int codec, const uint8_t *p, Py_ssize_t n, Py_ssize_t budget, int magic):
    """(bytearray, length) of the decompressed data."""
    cdef object src = PyMemoryView_FromMemory(<char *>p, n, PyBUF_READ)
    cdef Py_ssize_t guess = 4 * n + MIN_DECOMPRESS_GUESS
    if codec == 1:
        if n >= 18:
            # ISIZE trailer: uncompressed size mod 2**32 (of the last member)
            guess = max(guess, <Py_ssize_t>_le32u(p + n - 4) + 1)
        return _decompress_growing(codec, _gzip_decompress_into, src, guess, budget)
    if codec == 2:
        return _snappy_decompress(p, n, src, budget)
    if codec == 3:
        if magic == 0:
            src = _repair_lz4_header_checksum(p, n, src)
        return _decompress_growing(codec, _lz4_decompress_into, src, guess, budget)
    if codec == 4:
        if magic < 2:
            _fail(f"zstd compression needs magic 2, message has magic {magic}")
        return _decompress_growing(codec, _zstd_decompress_into, src, guess, budget)
    _fail(f"unknown compression codec {codec}")


cdef bytes _compress(int codec, bytes data):
    cdef Py_ssize_t start, n
    cdef list parts
    cdef object view, block
    if codec == 1:
        return bytes(_gzip_compress(data, level=GZIP_LEVEL))
    if codec == 2:
        view = memoryview(data)
        n = len(data)
        parts = [_XERIAL_HEADER]
        for start in range(0, n, XERIAL_BLOCK_SIZE):
            block = bytes(_snappy_compress_raw(view[start:start + XERIAL_BLOCK_SIZE]))
            parts.append(_be32_bytes(len(block)))
            parts.append(block)
        return b"".join(parts)
    if codec == 3:
        # independent blocks, no content checksum: what Kafka's Java
        # Lz4BlockInputStream can read (KIP-57)
        compressor = _Lz4Compressor(content_checksum=False, block_linked=False)
        compressor.compress(data)
        return bytes(compressor.finish())
    if codec == 4:
        return bytes(_zstd_compress(data, level=ZSTD_LEVEL))
    raise ValueError(f"unknown compression codec {codec}")


cdef bytes _be32_bytes(Py_ssize_t v):
    cdef uint8_t tmp[4]
    _put_be32(tmp, v)
    return PyBytes_FromStringAndSize(<char *>tmp, 4)


# ---------------------------------------------------------------------------
# decoding

cdef list _decode_records(const uint8_t *p, const uint8_t *end, int64_t count,
                          int64_t base_offset, int64_t base_timestamp, bint log_append_time,
                          int64_t max_timestamp):
    cdef Py_ssize_t i, j
    cdef int64_t length = 0, ts_delta = 0, offset_delta = 0, klen = 0, vlen = 0
    cdef int64_t n_headers = 0, offset = 0, timestamp = 0
    cdef const uint8_t *rec_start
    cdef const uint8_t *rec_end
    cdef object key, value, hkey, hvalue
    cdef tuple headers, pair
    cdef Record rec
    cdef list records
    if count > (end - p) // MIN_RECORD_SIZE:
        _fail(f"record count {count} cannot fit in {end - p} bytes of records")
    records = PyList_New(count)
    for i in range(count):
        p = _varint32(p, end, &length)
        if p == NULL:
            _fail("truncated or overlong record length varint")
        if length < 0 or length > end - p:
            _fail(f"record length {length} exceeds the batch")
        rec_start = p
        rec_end = p + length
        if p >= rec_end:
            _fail("record too short for its attributes")
        p += 1  # record attributes: unused by Kafka
        p = _varlong(p, rec_end, &ts_delta)
        if p == NULL:
            _fail("truncated or overlong record timestamp delta")
        p = _varint32(p, rec_end, &offset_delta)
        if p == NULL:
            _fail("truncated or overlong record offset delta")
        # key
        p = _varint32(p, rec_end, &klen)
        if p == NULL:
            _fail("truncated or overlong key length")
        if klen < 0:
            if klen != -1:
                _fail(f"invalid key length {klen}")
            key = None
        else:
            if klen > rec_end - p:
                _fail(f"key length {klen} exceeds the record")
            key = PyBytes_FromStringAndSize(<const char *>p, klen)
            p += klen
        # value
        p = _varint32(p, rec_end, &vlen)
        if p == NULL:
            _fail("truncated or overlong value length")
        if vlen < 0:
            if vlen != -1:
                _fail(f"invalid value length {vlen}")
            value = None
        else:
            if vlen > rec_end - p:
                _fail(f"value length {vlen} exceeds the record")
            value = PyBytes_FromStringAndSize(<const char *>p, vlen)
            p += vlen
        # headers
        p = _varint32(p, rec_end, &n_headers)
        if p == NULL:
            _fail("truncated or overlong header count")
        if n_headers < 0 or n_headers > (rec_end - p) // 2:
            _fail(f"invalid header count {n_headers}")
        if n_headers == 0:
            headers = _EMPTY
        else:
            headers = PyTuple_New(n_headers)
            for j in range(n_headers):
                p = _varint32(p, rec_end, &klen)
                if p == NULL:
                    _fail("truncated or overlong header key length")
                if klen < 0 or klen > rec_end - p:
                    _fail(f"invalid header key length {klen}")
                hkey = PyUnicode_DecodeUTF8(<const char *>p, klen, "surrogateescape")
                p += klen
                p = _varint32(p, rec_end, &vlen)
                if p == NULL:
                    _fail("truncated or overlong header value length")
                if vlen < 0:
                    if vlen != -1:
                        _fail(f"invalid header value length {vlen}")
                    hvalue = None
                else:
                    if vlen > rec_end - p:
                        _fail(f"header value length {vlen} exceeds the record")
                    hvalue = PyBytes_FromStringAndSize(<const char *>p, vlen)
                    p += vlen
                pair = (hkey, hvalue)
                Py_INCREF(pair)
                PyTuple_SET_ITEM(headers, j, pair)
        if p != rec_end:
            _fail(f"record declares {length} bytes but its fields take {p - rec_start}")
        if kop_add_overflow(base_offset, offset_delta, &offset):
            _fail("record offset overflows 64 bits")
        if log_append_time:
            timestamp = max_timestamp
        elif kop_add_overflow(base_timestamp, ts_delta, &timestamp):
            _fail("record timestamp overflows 64 bits")
        rec = _new_record(offset, timestamp, key, value, headers)
        Py_INCREF(rec)
        PyList_SET_ITEM(records, i, rec)
    if p != end:
        _fail(f"{end - p} bytes left over after the batch's {count} records")
    return records


cdef RecordBatch _decode_v2(const uint8_t *b, Py_ssize_t size, Py_ssize_t *budget):
    """The v2 batch in b[0:size] (size includes the 12-byte prefix)."""
    cdef int64_t base_offset = _be64(b)
    cdef int32_t leader_epoch = _be32(b + 12)
    cdef uint32_t crc = _be32u(b + 17)
    cdef int attributes = _be16(b + 21)
    cdef int32_t last_offset_delta = _be32(b + 23)
    cdef int64_t base_timestamp = _be64(b + 27)
    cdef int64_t max_timestamp = _be64(b + 35)
    cdef int64_t producer_id = _be64(b + 43)
    cdef int32_t producer_epoch = _be16(b + 51)
    cdef int32_t base_sequence = _be32(b + 53)
    cdef int32_t count = _be32(b + 57)
    cdef int codec = attributes & ATTR_COMPRESSION_MASK
    cdef int timestamp_type = 1 if attributes & ATTR_TIMESTAMP_TYPE else 0
    cdef const uint8_t *body = b + V2_HEADER_SIZE
    cdef Py_ssize_t body_len = size - V2_HEADER_SIZE
    cdef object out
    cdef list records
    if _crc_span(b + V2_CRC_START, size - V2_CRC_START) != crc:
        _fail(f"CRC mismatch in the batch at base offset {base_offset}")
    if codec > 4:
        _fail(f"unknown compression codec {codec}")
    if count < 0:
        _fail(f"negative record count {count}")
    if codec:
        out, n = _decompress(codec, body, body_len, budget[0], 2)
        body_len = n
        budget[0] -= body_len
        body = <const uint8_t *>PyByteArray_AS_STRING(out)
    records = _decode_records(body, body + body_len, count, base_offset, base_timestamp,
                              timestamp_type, max_timestamp)
    return _new_batch(base_offset, last_offset_delta, leader_epoch, 2, attributes, codec,
                      timestamp_type, attributes & ATTR_TRANSACTIONAL,
                      attributes & ATTR_CONTROL, base_timestamp, max_timestamp, producer_id,
                      producer_epoch, base_sequence, records)


cdef inline int _legacy_min_size(int magic) noexcept nogil:
    return V1_MIN_MESSAGE_SIZE if magic == 1 else V0_MIN_MESSAGE_SIZE


cdef inline int _signed8(int b) noexcept nogil:
    return b - 256 if b > 127 else b


cdef tuple _parse_legacy_message(const uint8_t *m, Py_ssize_t size):
    """One legacy message m[0:size] (offset and size prefix included):
    (offset, magic, attributes, timestamp, key, value)."""
    cdef int64_t offset = _be64(m)
    cdef uint32_t crc = _be32u(m + 12)
    cdef int magic = m[16]
    cdef int attributes
    cdef int64_t timestamp = -1
    cdef Py_ssize_t p = 18
    cdef int32_t length
    cdef object key = None, value = None, item
    cdef int k
    if magic > 1:
        _fail(f"unsupported magic {_signed8(magic)} in a legacy message set")
    if size - LOG_OVERHEAD < _legacy_min_size(magic):
        _fail(f"legacy message at offset {offset} is too short for magic {magic}")
    if (zlib.crc32(PyMemoryView_FromMemory(<char *>(m + 16), size - 16, PyBUF_READ))
            != crc):
        _fail(f"CRC mismatch in the magic {magic} message at offset {offset}")
    attributes = m[17]
    if magic == 1:
        timestamp = _be64(m + 18)
        p = 26
    for k in range(2):
        if size - p < 4:
            _fail(f"truncated legacy message {'key' if k == 0 else 'value'}")
        length = _be32(m + p)
        p += 4
        if length < 0:
            if length != -1:
                _fail(f"invalid legacy message {'key' if k == 0 else 'value'} length {length}")
            item = None
        else:
            if length > size - p:
                _fail(f"legacy message {'key' if k == 0 else 'value'} length {length} "
                      "exceeds the message")
            item = PyBytes_FromStringAndSize(<const char *>(m + p), length)
            p += length
        if k == 0:
            key = item
        else:
            value = item
    if p != size:
        _fail(f"{size - p} bytes left over in the legacy message at offset {offset}")
    return offset, magic, attributes, timestamp, key, value


cdef RecordBatch _decode_legacy(const uint8_t *m, Py_ssize_t size, Py_ssize_t *budget):
    cdef tuple entry = _parse_legacy_message(m, size)
    cdef int64_t offset = entry[0]
    cdef int magic = entry[1]
    cdef int attributes = entry[2]
    cdef int64_t timestamp = entry[3]
    cdef object value = entry[5]
    cdef int codec = attributes & ATTR_COMPRESSION_MASK
    cdef int timestamp_type = 1 if (magic == 1 and attributes & ATTR_TIMESTAMP_TYPE) else 0
    cdef list records, entries
    cdef object out
    cdef const uint8_t *inner
    cdef Py_ssize_t n, p, inner_size
    cdef int32_t msg_size
    cdef int64_t shift = 0, absolute, inner_offset, max_ts
    cdef Record rec
    if codec == 0:
        records = [_new_record(offset, timestamp, entry[4], value, _EMPTY)]
    else:
        if codec > 4:
            _fail(f"unknown compression codec {codec}")
        if value is None:
            _fail(f"compressed legacy message at offset {offset} has no value")
        out, n = _decompress(codec, <const uint8_t *>PyBytes_AS_STRING(value),
                             PyBytes_GET_SIZE(value), budget[0], magic)
        budget[0] -= n
        inner = <const uint8_t *>PyByteArray_AS_STRING(out)
        entries = []
        p = 0
        while p < n:
            if n - p < LOG_OVERHEAD:
                _fail("truncated message inside a compressed legacy message")
            msg_size = _be32(inner + p + 8)
            if msg_size < V0_MIN_MESSAGE_SIZE or msg_size > n - p - LOG_OVERHEAD:
                _fail(f"invalid inner legacy message size {msg_size}")
            inner_size = LOG_OVERHEAD + msg_size
            item = _parse_legacy_message(inner + p, inner_size)
            if item[1] != magic:
                _fail(f"inner message magic {item[1]} differs from its wrapper's magic {magic}")
            if item[2] & ATTR_COMPRESSION_MASK:
                _fail("nested compression inside a legacy message")
            entries.append(item)
            p += inner_size
        if not entries:
            _fail(f"compressed legacy message at offset {offset} holds no messages")
        if magic == 1:
            # inner offsets are relative; the wrapper carries the last one's
            # absolute offset.  A producer's message set has wrapper offset 0
            # (the broker assigns it): then the relative offsets stand, as in
            # Kafka's own reader.
            if kop_sub_overflow(offset, <int64_t>entries[len(entries) - 1][0], &shift):
                # the exact difference is below INT64_MIN (then 0, as any
                # negative one) or above INT64_MAX
                if offset >= 0:
                    _fail("inner message offset overflows 64 bits")
                shift = 0
            if shift < 0:
                shift = 0
        records = []
        for item in entries:
            inner_offset = item[0]
            if kop_add_overflow(inner_offset, shift, &absolute):
                _fail("inner message offset overflows 64 bits")
            records.append(_new_record(absolute, timestamp if timestamp_type else item[3],
                                       item[4], item[5], _EMPTY))
    rec = records[0]
    max_ts = rec.timestamp
    for item in records:
        if (<Record>item).timestamp > max_ts:
            max_ts = (<Record>item).timestamp
    if kop_sub_overflow((<Record>records[len(records) - 1]).offset, rec.offset, &absolute):
        _fail("legacy message offsets span more than 64 bits")
    return _new_batch(rec.offset, absolute, -1, magic, attributes, codec, timestamp_type, False,
                      False, rec.timestamp, max_ts, -1, -1, -1, records)


cdef Py_ssize_t _frame_end(const uint8_t *b, Py_ssize_t pos, Py_ssize_t n,
                           bint allow_partial_tail) except -2:
    """End of the batch/message at pos; -1 for a tolerated partial tail."""
    cdef Py_ssize_t remaining = n - pos
    cdef int32_t length
    cdef int magic
    if remaining < LOG_OVERHEAD:
        if allow_partial_tail:
            return -1
        _fail(f"truncated batch: {remaining} bytes at buffer offset {pos}")
    length = _be32(b + pos + 8)
    if length < V0_MIN_MESSAGE_SIZE:
        _fail(f"invalid batch length {length} at buffer offset {pos}")
    if length > remaining - LOG_OVERHEAD:
        if allow_partial_tail:
            return -1
        _fail(f"truncated batch: length {length} but {remaining - LOG_OVERHEAD} bytes left "
              f"at buffer offset {pos}")
    magic = b[pos + 16]
    if magic == 2:
        if length < V2_MIN_BATCH_LENGTH:
            _fail(f"batch length {length} is shorter than a v2 batch header")
    elif magic == 1:
        if length < V1_MIN_MESSAGE_SIZE:
            _fail(f"message size {length} is shorter than a magic 1 message")
    elif magic != 0:
        _fail(f"unsupported magic {_signed8(magic)} at buffer offset {pos}")
    return pos + LOG_OVERHEAD + length


def decode_batches(buf, *, allow_partial_tail=False, max_decompressed=MAX_DECOMPRESSED):
    """Decode every batch of a Kafka record set (v2 batches and magic 0/1
    message sets), decompressing as needed.

    A truncated last batch raises CorruptRecordError unless
    ``allow_partial_tail`` (fetch responses may end in one).  At most
    ``max_decompressed`` bytes are decompressed over the whole call.
    """
    cdef Py_buffer view
    cdef const uint8_t *b
    cdef Py_ssize_t n, pos = 0, end
    cdef Py_ssize_t budget
    cdef bint partial = allow_partial_tail
    cdef list batches = []
    cdef object cap = PyNumber_Index(max_decompressed)
    if cap < 0:
        raise ValueError(f"max_decompressed must be >= 0, got {cap}")
    budget = min(cap, <object>INT64_MAX)
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        b = <const uint8_t *>view.buf
        n = view.len
        while pos < n:
            end = _frame_end(b, pos, n, partial)
            if end < 0:
                break
            if b[pos + 16] == 2:
                batches.append(_decode_v2(b + pos, end - pos, &budget))
            else:
                batches.append(_decode_legacy(b + pos, end - pos, &budget))
            pos = end
    finally:
        PyBuffer_Release(&view)
    return batches


# ---------------------------------------------------------------------------
# verification without per-record objects

cdef tuple _scan(object buf, bint want_infos):
    cdef Py_buffer view
    cdef const uint8_t *b
    cdef const uint8_t *q
    cdef const uint8_t *end
    cdef Py_ssize_t n, pos = 0, remaining
    cdef int32_t length, count
    cdef int attributes
    cdef int64_t rec_len = 0, tiles, batches = 0, total_records = 0
    cdef list infos = [] if want_infos else None
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        b = <const uint8_t *>view.buf
        n = view.len
        while pos < n:
            remaining = n - pos
            if remaining > 16 and b[pos + 16] != 2:
                _fail(f"unsupported magic {<signed char>b[pos + 16]} at buffer offset {pos} "
                      "(expected 2)")
            if remaining < V2_HEADER_SIZE:
                _fail(f"truncated batch: {remaining} bytes at buffer offset {pos}")
            length = _be32(b + pos + 8)
            if length < V2_MIN_BATCH_LENGTH:
                _fail(f"invalid batch length {length} at buffer offset {pos}")
            if length > remaining - LOG_OVERHEAD:
                _fail(f"truncated batch: length {length} but {remaining - LOG_OVERHEAD} bytes "
                      f"left at buffer offset {pos}")
            end = b + pos + LOG_OVERHEAD + length
            count = _be32(b + pos + 57)
            if count < 0:
                _fail(f"negative record count {count} at buffer offset {pos}")
            attributes = _be16(b + pos + 21)
            if (attributes & ATTR_COMPRESSION_MASK) > 4:
                _fail(f"unknown compression codec {attributes & ATTR_COMPRESSION_MASK} at "
                      f"buffer offset {pos}")
            if _crc_span(b + pos + V2_CRC_START, LOG_OVERHEAD + length - V2_CRC_START) != _be32u(b + pos + 17):
                _fail(f"CRC mismatch in the batch at buffer offset {pos}")
            if (attributes & ATTR_COMPRESSION_MASK) == 0:
                # the record length varints must tile the batch exactly
                q = b + pos + V2_HEADER_SIZE
                tiles = 0
                while q < end:
                    q = _varint32(q, end, &rec_len)
                    if q == NULL or rec_len < 0 or rec_len > end - q:
                        _fail(f"record length overruns the batch at buffer offset {pos}")
                    q += rec_len
                    tiles += 1
                if tiles != count:
                    _fail(f"batch at buffer offset {pos} declares {count} records but holds "
                          f"{tiles}")
            if want_infos:
                infos.append((
                    pos, LOG_OVERHEAD + length, _be64(b + pos), _be32(b + pos + 23), count,
                    attributes, _be64(b + pos + 27), _be64(b + pos + 35), _be64(b + pos + 43),
                    _be16(b + pos + 51), _be32(b + pos + 53),
                ))
            batches += 1
            total_records += count
            pos += LOG_OVERHEAD + length
    finally:
        PyBuffer_Release(&view)
    return batches, total_records, infos


def verify_batches(buf):
    """Check the structure, sizes and CRC of every v2 batch in ``buf``.

    Returns ``(batches, records)``; raises CorruptRecordError naming the
    problem.  No per-record objects are built.
    """
    cdef tuple result = _scan(buf, False)
    return result[0], result[1]


def batch_infos(buf):
    """verify_batches() plus one header tuple per batch:
    ``(offset_in_buf, length, base_offset, last_offset_delta, record_count,
    attributes, base_timestamp, max_timestamp, producer_id, producer_epoch,
    base_sequence)`` (``length`` includes the 12-byte offset/length prefix)."""
    return _scan(buf, True)[2]


def patch_base_offset(buf, base_offset):
    """Overwrite the base offset of the v2 batch at the start of the
    writable ``buf`` in place (the CRC does not cover it)."""
    cdef Py_buffer view
    cdef int overflow = 0
    cdef object value = PyNumber_Index(base_offset)
    cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        if view.readonly:
            raise TypeError("patch_base_offset needs a writable buffer (bytearray, memoryview)")
        if overflow or v < 0:
            raise OffsetOverflowError(f"base offset {value} is outside 0..2**63-1")
        if view.len < V2_HEADER_SIZE or (<uint8_t *>view.buf)[16] != 2:
            _fail("patch_base_offset needs a v2 batch at the start of the buffer")
        _put_be64(<uint8_t *>view.buf, v)
    finally:
        PyBuffer_Release(&view)


# ---------------------------------------------------------------------------
# encoding

cdef int _codec_id(object compression) except -1:
    if isinstance(compression, str):
        try:
            return COMPRESSION_NAMES.index(compression.lower())
        except ValueError:
            raise ValueError(
                f"unknown compression {compression!r}; use one of {', '.join(COMPRESSION_NAMES)}"
            ) from None
    codec = PyNumber_Index(compression)
    if not 0 <= codec <= 4:
        raise ValueError(f"unknown compression codec {codec}")
    return codec


cdef int64_t _check_range(object value, int64_t lo, int64_t hi, str what) except? -1:
    value = PyNumber_Index(value)
    if not lo <= value <= hi:
        raise ValueError(f"{what} {value} is outside {lo}..{hi}")
    return value


cdef inline bint _exact_record_tuple(tuple t):
    """A 5-tuple whose fields already have exactly the types a Record holds."""
    cdef object key, value, headers
    if len(t) != 5 or type(t[0]) is not int or type(t[1]) is not int:
        return False
    key = t[2]
    value = t[3]
    headers = t[4]
    if not (key is None or type(key) is bytes) or not (value is None or type(value) is bytes):
        return False
    if type(headers) is not tuple:
        return False
    return not headers or _check_headers(headers) is headers


cdef Record _as_record(object item):
    if type(item) is Record:
        return <Record>item
    try:
        offset, timestamp, key, value, headers = item
    except (TypeError, ValueError):
        raise TypeError(
            "records must be Records or (offset, timestamp, key, value, headers) tuples"
        ) from None
    return Record(offset, timestamp, key, value, headers)


cdef inline const char *_key_utf8(str key, Py_ssize_t *size, list keepalive) except NULL:
    """UTF-8 of a header key; surrogate-escaped bytes (keys decoded from
    non-UTF-8 data) go back to the original bytes."""
    try:
        return PyUnicode_AsUTF8AndSize(key, size)
    except UnicodeEncodeError:
        pass
    try:
        raw = key.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise ValueError(f"header key {key!r} cannot be encoded as UTF-8") from None
    keepalive.append(raw)
    size[0] = PyBytes_GET_SIZE(raw)
    return PyBytes_AS_STRING(raw)


cdef Py_ssize_t _payload_size(object value) noexcept:
    cdef Py_ssize_t n
    if value is None:
        return 1
    n = PyBytes_GET_SIZE(value)
    return _uvarint_size(_zigzag(n)) + n


cdef inline uint8_t *_put_payload(uint8_t *p, object value) noexcept:
    cdef Py_ssize_t n
    if value is None:
        p[0] = 1  # zigzag(-1)
        return p + 1
    n = PyBytes_GET_SIZE(value)
    p = _put_uvarint(p, _zigzag(n))
    memcpy(p, PyBytes_AS_STRING(value), n)
    return p + n


cdef Py_ssize_t _headers_size(tuple headers) except -1:
    cdef Py_ssize_t size = _uvarint_size(_zigzag(len(headers))), klen
    cdef list keepalive = []
    cdef tuple pair
    for pair in headers:
        _key_utf8(<str>pair[0], &klen, keepalive)
        size += _uvarint_size(_zigzag(klen)) + klen + _payload_size(pair[1])
    return size


cdef uint8_t *_put_headers(uint8_t *p, tuple headers) except NULL:
    cdef Py_ssize_t klen
    cdef const char *k
    cdef list keepalive = []
    cdef tuple pair
    p = _put_uvarint(p, _zigzag(len(headers)))
    for pair in headers:
        k = _key_utf8(<str>pair[0], &klen, keepalive)
        p = _put_uvarint(p, _zigzag(klen))
        memcpy(p, k, klen)
        p += klen
        p = _put_payload(p, pair[1])
    return p


def encode_batch(records, *, base_offset=0, compression="none", producer_id=-1,
                 producer_epoch=-1, base_sequence=-1, transactional=False, timestamp_type=0,
                 partition_leader_epoch=-1, control=False):
    """Encode ``records`` as one v2 batch with a CRC32C.

    Each record's offset delta is ``record.offset - base_offset`` (deltas must
    be >= 0, strictly increasing and fit 31 bits); the batch's base timestamp
    is the first record's timestamp and max_timestamp the largest one.
    ``records`` may hold Records or plain 5-tuples in Record field order.
    """
    cdef int codec = _codec_id(compression)
    cdef int64_t base = _check_range(base_offset, INT64_MIN, INT64_MAX, "base_offset")
    cdef int64_t pid = _check_range(producer_id, INT64_MIN, INT64_MAX, "producer_id")
    cdef int64_t epoch = _check_range(producer_epoch, -32768, 32767, "producer_epoch")
    cdef int64_t sequence = _check_range(base_sequence, -2147483648, 2147483647, "base_sequence")
    cdef int64_t leader_epoch = _check_range(partition_leader_epoch, -2147483648, 2147483647,
                                             "partition_leader_epoch")
    cdef int ts_type = <int>_check_range(timestamp_type, 0, 1, "timestamp_type")
    cdef list items
    cdef Py_ssize_t n, i, body_size = 0, rec_size
    cdef int64_t *fields = NULL  # per record: size, offset delta, timestamp
    cdef Record rec
    cdef tuple tup
    cdef object key, value
    cdef tuple headers
    cdef int64_t offset, timestamp, delta, prev_delta = -1, first_ts = 0, max_ts = 0, ts_delta
    cdef bytes body, out, payload
    cdef uint8_t *w
    cdef uint8_t *o
    cdef int attributes

    items = records if type(records) is list else list(records)
    n = len(items)
    if n == 0:
        raise ValueError("encode_batch needs at least one record")
    fields = <int64_t *>malloc(3 * n * sizeof(int64_t))
    if fields == NULL:
        raise MemoryError()
    try:
        # pass 1: validate and size every record.  Records and exact
        # (int, int, bytes|None, bytes|None, tuple-of-pairs) tuples are used
        # as they are; anything else goes through Record() first.  No Python
        # code runs for those, so the caller's list cannot change under us.
        for i in range(n):
            item = items[i]
            if type(item) is Record:
                rec = <Record>item
                offset = rec.offset
                timestamp = rec.timestamp
                key = rec.key
                value = rec.value
                headers = rec.headers
            elif type(item) is tuple and _exact_record_tuple(<tuple>item):
                tup = <tuple>item
                offset = tup[0]
                timestamp = tup[1]
                key = tup[2]
                value = tup[3]
                headers = <tuple>tup[4]
            else:
                if items is records:
                    items = list(items)  # never modify the caller's list
                rec = _as_record(item)
                items[i] = rec
                offset = rec.offset
                timestamp = rec.timestamp
                key = rec.key
                value = rec.value
                headers = rec.headers
            if kop_sub_overflow(offset, base, &delta) or delta <= prev_delta or delta > INT32_MAX:
                raise ValueError(
                    f"record offset {offset} gives offset delta {<object>offset - <object>base}; "
                    f"deltas from base_offset {base} must be >= 0, increase strictly and stay "
                    "below 2**31"
                )
            prev_delta = delta
            if i == 0:
                first_ts = max_ts = timestamp
            elif timestamp > max_ts:
                max_ts = timestamp
            if kop_sub_overflow(timestamp, first_ts, &ts_delta):
                raise ValueError(f"record timestamp {timestamp} is too far from the first one")
            rec_size = (1 + _uvarint_size(_zigzag(ts_delta)) + _uvarint_size(_zigzag(delta))
                        + _payload_size(key) + _payload_size(value))
            if headers:
                rec_size += _headers_size(headers)
            else:
                rec_size += 1
            fields[3 * i] = rec_size
            fields[3 * i + 1] = delta
            fields[3 * i + 2] = ts_delta
            body_size += _uvarint_size(_zigzag(rec_size)) + rec_size

        # pass 2: write; uncompressed records go straight into the batch
        if codec == 0:
            out = PyBytes_FromStringAndSize(NULL, V2_HEADER_SIZE + body_size)
            w = <uint8_t *>PyBytes_AS_STRING(out) + V2_HEADER_SIZE
        else:
            body = PyBytes_FromStringAndSize(NULL, body_size)
            w = <uint8_t *>PyBytes_AS_STRING(body)
        for i in range(n):
            item = items[i]
            if type(item) is Record:
                key = (<Record>item).key
                value = (<Record>item).value
                headers = (<Record>item).headers
            else:
                key = (<tuple>item)[2]
                value = (<tuple>item)[3]
                headers = <tuple>(<tuple>item)[4]
            w = _put_uvarint(w, _zigzag(fields[3 * i]))
            w[0] = 0  # record attributes
            w = _put_uvarint(w + 1, _zigzag(fields[3 * i + 2]))
            w = _put_uvarint(w, _zigzag(fields[3 * i + 1]))
            w = _put_payload(w, key)
            w = _put_payload(w, value)
            if headers:
                w = _put_headers(w, headers)
            else:
                w[0] = 0
                w += 1
    finally:
        free(fields)

    if codec:
        payload = _compress(codec, body)
        out = PyBytes_FromStringAndSize(NULL, V2_HEADER_SIZE + len(payload))
        memcpy(PyBytes_AS_STRING(out) + V2_HEADER_SIZE, PyBytes_AS_STRING(payload),
               len(payload))
    attributes = codec | (ts_type << 3)
    if transactional:
        attributes |= ATTR_TRANSACTIONAL
    if control:
        attributes |= ATTR_CONTROL
    o = <uint8_t *>PyBytes_AS_STRING(out)
    _put_be64(o, base)
    _put_be32(o + 8, PyBytes_GET_SIZE(out) - LOG_OVERHEAD)
    _put_be32(o + 12, leader_epoch)
    o[16] = 2
    _put_be16(o + 21, attributes)
    _put_be32(o + 23, prev_delta)
    _put_be64(o + 27, first_ts)
    _put_be64(o + 35, max_ts)
    _put_be64(o + 43, pid)
    _put_be16(o + 51, epoch)
    _put_be32(o + 53, sequence)
    _put_be32(o + 57, n)
    _put_be32(o + 17, _crc_span(o + V2_CRC_START, PyBytes_GET_SIZE(out) - V2_CRC_START))
    return out


cdef int64_t _advance_sequence(int64_t sequence, int64_t increment) noexcept:
    """base_sequence + increment, wrapping at 2**31 - 1 as Kafka does."""
    if sequence < 0:
        return sequence
    if sequence > INT32_MAX - increment:
        return increment - (INT32_MAX - sequence) - 1
    return sequence + increment


def split_batch(batch_bytes, max_records):
    """Split one v2 batch holding more than ``max_records`` records into
    several valid v2 batches of at most ``max_records`` records each (same
    producer fields with base_sequence advanced, same compression and
    attributes).  A batch within the limit comes back as ``[batch_bytes]``."""
    cdef object limit = PyNumber_Index(max_records)
    cdef list infos, records, out
    cdef RecordBatch batch
    cdef Py_ssize_t start, step
    if limit < 1:
        raise ValueError(f"max_records must be >= 1, got {limit}")
    infos = _scan(batch_bytes, True)[2]
    if len(infos) != 1:
        _fail(f"split_batch needs exactly one batch, buffer holds {len(infos)}")
    if infos[0][4] <= limit:
        return [batch_bytes]
    step = limit
    batch = decode_batches(batch_bytes)[0]
    records = batch.records
    out = []
    for start in range(0, len(records), step):
        chunk = records[start:start + step]
        first = <Record>chunk[0]
        out.append(encode_batch(
            chunk,
            base_offset=first.offset,
            compression=batch.compression,
            producer_id=batch.producer_id,
            producer_epoch=batch.producer_epoch,
            base_sequence=_advance_sequence(batch.base_sequence, first.offset - batch.base_offset),
            transactional=batch.is_transactional,
            timestamp_type=batch.timestamp_type,
            partition_leader_epoch=batch.partition_leader_epoch,
            control=batch.is_control,
        ))
    return out
