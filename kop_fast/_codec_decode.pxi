# kop_fast._codec: decoding and verification.
#
# decode_batches() (v2 batches and legacy magic 0/1 message sets),
# verify_batches()/batch_infos() without per-record objects, and
# patch_base_offset().
#
# Included textually by _codec.pyx (one extension module): uses its cimports
# and declarations and the parts included before it.

# ---------------------------------------------------------------------------
# decoding

# Header pairs are remembered per position: producers send the same header
# keys (and often the same values: content types, schema ids, origins) on
# every record, so a header whose key and value bytes equal those at the same
# position of the record before reuses that record's (str, bytes) pair, and a
# record whose pairs are all reused shares the previous record's headers
# tuple.  All of these are immutable, so sharing is invisible except to `is`.
# The tuples are untracked by the cycle collector at once (they hold only
# str, bytes and None, and CPython would untrack them at its next collection
# anyway), so collections that many records' tuples trigger stay cheap.

cdef enum:
    HEADER_SLOTS = 8  # header positions remembered; headers after the 8th are not shared


cdef struct _HeaderSlot:
    PyObject *pair  # owned reference, or NULL
    const uint8_t *key
    int64_t key_len
    const uint8_t *value
    int64_t value_len  # -1: None


cdef inline bint _same_span(const uint8_t *a, int64_t a_len, const uint8_t *b,
                            int64_t b_len) noexcept nogil:
    # (the first byte first: a header value of its own, a trace id, usually
    # differs there, and then memcmp is not called)
    return a_len == b_len and (a_len <= 0 or (a[0] == b[0] and memcmp(a, b, <size_t>a_len) == 0))


cdef inline object _header_key(const uint8_t *p, int64_t n):
    return PyUnicode_DecodeUTF8(<const char *>p, n, "surrogateescape")


cdef inline object _header_value(const uint8_t *p, int64_t n):
    if n < 0:
        return None
    return PyBytes_FromStringAndSize(<const char *>p, n)


cdef tuple _new_pair(object key, object value):
    cdef tuple pair = PyTuple_New(2)
    Py_INCREF(key)
    PyTuple_SET_ITEM(pair, 0, key)
    Py_INCREF(value)
    PyTuple_SET_ITEM(pair, 1, value)
    PyObject_GC_UnTrack(<PyObject *>pair)
    return pair


cdef PyObject *_slot_pair(_HeaderSlot *slot, const uint8_t *k, int64_t k_len,
                          const uint8_t *v, int64_t v_len) except NULL:
    """The (key, value) pair for these bytes at this slot's position: the
    slot's own pair when both match, else a new one (reusing whichever of
    the slot's key and value matches), which the slot then holds.  A
    borrowed reference, valid until the slot changes."""
    cdef PyObject *old = slot.pair
    cdef object key, value
    cdef tuple pair
    cdef bint same_key, same_value
    if old == NULL:
        key = _header_key(k, k_len)
        value = _header_value(v, v_len)
    else:
        same_key = _same_span(k, k_len, slot.key, slot.key_len)
        same_value = _same_span(v, v_len, slot.value, slot.value_len)
        if same_key and same_value:
            return old
        key = <object>PyTuple_GET_ITEM(<object>old, 0) if same_key else _header_key(k, k_len)
        value = <object>PyTuple_GET_ITEM(<object>old, 1) if same_value else _header_value(v, v_len)
    pair = _new_pair(key, value)
    Py_INCREF(pair)
    slot.pair = <PyObject *>pair
    Py_XDECREF(old)
    slot.key = k
    slot.key_len = k_len
    slot.value = v
    slot.value_len = v_len
    return slot.pair


cdef tuple _decode_headers(const uint8_t **pp, const uint8_t *rec_end, int64_t n_headers,
                           _HeaderSlot *slots, tuple last):
    """The record's n_headers (> 0) headers at pp[0], which is moved past
    them; ``last`` is the headers tuple of the record before (or None), the
    result when its pairs are the same objects as this record's."""
    cdef const uint8_t *p = pp[0]
    cdef const uint8_t *hk
    cdef int64_t klen = 0, vlen = 0
    cdef Py_ssize_t j
    cdef PyObject *pair
    cdef PyObject *pairs[HEADER_SLOTS]
    cdef bint small = n_headers <= HEADER_SLOTS
    cdef bint reuse = small and last is not None and PyTuple_GET_SIZE(last) == n_headers
    cdef tuple headers = None if small else PyTuple_New(n_headers)
    cdef tuple extra
    for j in range(n_headers):
        p = _varint32(p, rec_end, &klen)
        if p == NULL:
            _fail("truncated or overlong header key length")
        if klen < 0 or klen > rec_end - p:
            _fail(f"invalid header key length {klen}")
        hk = p
        p += klen
        p = _varint32(p, rec_end, &vlen)
        if p == NULL:
            _fail("truncated or overlong header value length")
        if vlen < 0:
            if vlen != -1:
                _fail(f"invalid header value length {vlen}")
        elif vlen > rec_end - p:
            _fail(f"header value length {vlen} exceeds the record")
        if j >= HEADER_SLOTS:
            extra = _new_pair(_header_key(hk, klen), _header_value(p, vlen))
            Py_INCREF(extra)
            PyTuple_SET_ITEM(headers, j, extra)
        else:
            pair = _slot_pair(&slots[j], hk, klen, p, vlen)
            if small:
                pairs[j] = pair
                if reuse and PyTuple_GET_ITEM(last, j) != pair:
                    reuse = False
            else:
                Py_INCREF(<object>pair)
                PyTuple_SET_ITEM(headers, j, <object>pair)
        if vlen > 0:
            p += vlen
    pp[0] = p
    if small:
        if reuse:
            return last
        headers = PyTuple_New(n_headers)
        for j in range(n_headers):
            Py_INCREF(<object>pairs[j])
            PyTuple_SET_ITEM(headers, j, <object>pairs[j])
    PyObject_GC_UnTrack(<PyObject *>headers)
    return headers


cdef list _decode_records(const uint8_t *p, const uint8_t *end, int64_t count,
                          int64_t base_offset, int64_t base_timestamp, bint log_append_time,
                          int64_t max_timestamp):
    cdef _HeaderSlot slots[HEADER_SLOTS]
    cdef list records
    cdef Py_ssize_t j
    if count > (end - p) // MIN_RECORD_SIZE:
        _fail(f"record count {count} cannot fit in {end - p} bytes of records")
    records = PyList_New(count)
    memset(slots, 0, sizeof(slots))
    try:
        _fill_records(records, slots, p, end, count, base_offset, base_timestamp,
                      log_append_time, max_timestamp)
    finally:
        for j in range(HEADER_SLOTS):
            Py_XDECREF(slots[j].pair)
    return records


cdef int _fill_records(list records, _HeaderSlot *slots, const uint8_t *p, const uint8_t *end,
                       int64_t count, int64_t base_offset, int64_t base_timestamp,
                       bint log_append_time, int64_t max_timestamp) except -1:
    cdef Py_ssize_t i
    cdef int64_t length = 0, ts_delta = 0, offset_delta = 0, klen = 0, vlen = 0
    cdef int64_t n_headers = 0, offset = 0, timestamp = 0
    cdef const uint8_t *rec_start
    cdef const uint8_t *rec_end
    cdef object key, value
    cdef tuple headers, last_headers = None
    cdef Record rec
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
            headers = _decode_headers(&p, rec_end, n_headers, slots, last_headers)
            last_headers = headers
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
    return 0


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
