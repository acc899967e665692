# kop_fast._codec: compression and bounded decompression.
#
# gzip, snappy (raw and xerial), lz4 (with the magic 0 header checksum
# repair) and zstd, through cramjam; decompression never exceeds its budget.
#
# Included textually by _codec.pyx (one extension module): uses its cimports
# and declarations and the parts included before it.

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
