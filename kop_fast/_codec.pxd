# Declarations of the compiled record codec (kop_fast._codec).
#
# The CRC32C C code lives in _crc32c.h; the cdef classes are declared here so
# other Cython modules can cimport them and read their fields without Python
# attribute lookups.

cimport cython
from libc.stdint cimport int64_t, uint32_t


cdef extern from "_crc32c.h" nogil:
    void kop_crc32c_init(int force_software)
    int kop_crc32c_hw_available()
    int kop_crc32c_use_hw
    uint32_t kop_crc32c_update(uint32_t crc, const unsigned char *p, size_t n)
    uint32_t kop_crc32c_update_hw(uint32_t crc, const unsigned char *p, size_t n)
    uint32_t kop_crc32c_sw(uint32_t crc, const unsigned char *p, size_t n)


@cython.final
cdef class Record:
    # offset and timestamp are kept as C integers: decoding does not create
    # the two int objects per record unless somebody reads them
    cdef readonly int64_t offset
    cdef readonly int64_t timestamp
    cdef readonly object key  # bytes or None
    cdef readonly object value  # bytes or None
    cdef readonly tuple headers  # ((str, bytes | None), ...)

    cdef tuple _astuple(self)


cdef class RecordBatch:
    cdef public int64_t base_offset
    cdef public int64_t last_offset_delta
    cdef public int64_t partition_leader_epoch
    cdef public int magic
    cdef public int attributes
    cdef public int compression
    cdef public int timestamp_type
    cdef public bint is_transactional
    cdef public bint is_control
    cdef public int64_t base_timestamp
    cdef public int64_t max_timestamp
    cdef public int64_t producer_id
    cdef public int64_t producer_epoch
    cdef public int64_t base_sequence
    cdef public list records

    cdef tuple _fields(self)


@cython.final
cdef class OffsetLayout:
    cdef readonly int ledger_bits
    cdef readonly int entry_bits
    cdef readonly int index_bits
    cdef readonly int64_t max_ledger_id
    cdef readonly int64_t max_entry_id
    cdef readonly int64_t max_index
    cdef readonly int64_t max_offset

    cdef int64_t _pack(self, object ledger_id, object entry_id, object batch_index) except? -1
