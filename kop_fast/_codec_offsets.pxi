# kop_fast._codec: offset packing.
#
# OffsetLayout and pack_offset()/unpack_offset(): a Kafka offset as a
# packed Pulsar (ledger, entry, batch index) position.
#
# Included textually by _codec.pyx (one extension module): uses its cimports
# and declarations and the parts included before it.

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
