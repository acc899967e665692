# kop_fast._codec: encoding.
#
# encode_batch() (one v2 batch, optionally compressed) and split_batch().
#
# Included textually by _codec.pyx (one extension module): uses its cimports
# and declarations and the parts included before it.

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
