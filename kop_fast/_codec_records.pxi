# kop_fast._codec: Record and RecordBatch.
#
# the two value classes, their argument checks, Record's vectorcall
# constructor and the C-level constructors the decoder uses.
#
# Included textually by _codec.pyx (one extension module): uses its cimports
# and declarations and the parts included before it.

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
    # The decoder and the vectorcall constructor make Records with
    # kop_record_new (_codec.pyx), which has its own free list; every Record
    # is freed by kop_record_dealloc; key, value and headers are member
    # descriptors (all installed by _record_setup below).

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
    if kwnames != NULL or nargs < 4 or nargs > 5:
        return kop_call_type_generic(type, args, nargsf, kwnames)
    return kop_record_new(
        _as_int64(<object>args[0], "record offset"),
        _as_int64(<object>args[1], "record timestamp"),
        _check_payload(<object>args[2], "key"),
        _check_payload(<object>args[3], "value"),
        _check_headers(<object>args[4]) if nargs == 5 else _EMPTY,
    )


kop_set_type_vectorcall(Record, <kop_vectorcallfunc>_record_vectorcall)


cdef _record_setup():
    """Install Record's C-level allocator and deallocator and its key,
    value and headers member descriptors (kop_record_setup), which find the
    fields in this probe instance of distinct sentinels."""
    cdef Record probe = Record.__new__(Record)
    cdef object key = object(), value = object()
    cdef tuple headers = (object(),)
    cdef int64_t offset = 0x0123456789ABCDEF, timestamp = 0x7EDCBA9876543210
    probe.offset = offset
    probe.timestamp = timestamp
    probe.key = key
    probe.value = value
    probe.headers = headers
    kop_record_setup(Record, probe, offset, timestamp, key, value, headers)


_record_setup()


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
    return <Record>kop_record_new(offset, timestamp, key, value, headers)


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
