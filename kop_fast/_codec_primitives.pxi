# kop_fast._codec: byte order, CRC32C and varints.
#
# big-endian loads and stores, crc32c() with its hardware/software
# dispatch, zigzag varints (encode_varint, decode_varint).
#
# Included textually by _codec.pyx (one extension module): uses its cimports
# and declarations and the parts included before it.

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
