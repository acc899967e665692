"""The Kafka record codec: compiled (kop_fast._codec) unless
``KOP_FAST_NO_EXTENSIONS=1``, then the pure-Python twin (kop_fast._codec_py).

Import the API from here::

    from kop_fast import codec
    batches = codec.decode_batches(buf)

``IMPLEMENTATION`` says which one was chosen ("cython" or "python").  If the
compiled module is expected but does not import, this module raises
ImportError instead of silently running the much slower twin.
``implementations()`` returns every usable implementation module (tests run
against all of them).  Both raise the same CorruptRecordError and
OffsetOverflowError classes.

The Kafka header <-> Pulsar property mapping (headers_to_properties,
properties_to_headers) is not part of the codec: see kop_fast.pulsar_payload.
"""

from __future__ import annotations

import os
from types import ModuleType

from kop_fast import _codec_py

#: names both implementation modules define (the public codec API); the pure
#: twin's __all__ is the one list of them
API = (*_codec_py.__all__, "_crc32c_sw")

__all__ = [*_codec_py.__all__, "IMPLEMENTATION", "extensions_disabled", "implementations"]


def extensions_disabled() -> bool:
    """True when ``KOP_FAST_NO_EXTENSIONS`` asks for the pure-Python code."""
    value = os.environ.get("KOP_FAST_NO_EXTENSIONS", "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def _load_compiled() -> ModuleType:
    try:
        from kop_fast import _codec
    except ImportError as exc:
        raise ImportError(
            "kop_fast._codec, the compiled record codec, failed to import "
            f"({exc}). Build it with `python setup.py build_ext --inplace` (or reinstall "
            "kop_fast), or set KOP_FAST_NO_EXTENSIONS=1 to run the pure-Python codec "
            "on purpose."
        ) from exc
    return _codec


if extensions_disabled():
    _impl: ModuleType = _codec_py
    IMPLEMENTATION = "python"
else:
    _impl = _load_compiled()
    IMPLEMENTATION = "cython"


def implementations() -> list[ModuleType]:
    """Every usable implementation module: the compiled one first (unless
    extensions are disabled), then the pure-Python twin."""
    if extensions_disabled():
        return [_codec_py]
    return [_load_compiled(), _codec_py]


COMPRESSION_NONE = _impl.COMPRESSION_NONE
COMPRESSION_GZIP = _impl.COMPRESSION_GZIP
COMPRESSION_SNAPPY = _impl.COMPRESSION_SNAPPY
COMPRESSION_LZ4 = _impl.COMPRESSION_LZ4
COMPRESSION_ZSTD = _impl.COMPRESSION_ZSTD
COMPRESSION_NAMES = _impl.COMPRESSION_NAMES
CRC32C_HARDWARE = _impl.CRC32C_HARDWARE
MAX_DECOMPRESSED = _impl.MAX_DECOMPRESSED
DEFAULT_OFFSET_LAYOUT = _impl.DEFAULT_OFFSET_LAYOUT

CorruptRecordError = _impl.CorruptRecordError
OffsetOverflowError = _impl.OffsetOverflowError
Record = _impl.Record
RecordBatch = _impl.RecordBatch
OffsetLayout = _impl.OffsetLayout

crc32c = _impl.crc32c
encode_varint = _impl.encode_varint
decode_varint = _impl.decode_varint
decode_batches = _impl.decode_batches
encode_batch = _impl.encode_batch
verify_batches = _impl.verify_batches
batch_infos = _impl.batch_infos
patch_base_offset = _impl.patch_base_offset
split_batch = _impl.split_batch
pack_offset = _impl.pack_offset
unpack_offset = _impl.unpack_offset
set_offset_layout = _impl.set_offset_layout
get_offset_layout = _impl.get_offset_layout
