"""Build of the compiled hot path, kop_fast._codec.

The extension is required: a failed compile fails the install loudly instead
of silently leaving only the pure-Python twin (set KOP_FAST_NO_EXTENSIONS=1 at
run time to choose the twin on purpose).
"""
from glob import glob

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "kop_fast._codec",
        ["kop_fast/_codec.pyx"],
        # the CRC32C C code; SSE4.2 is enabled per function inside it
        # (target attribute + run-time dispatch), never for the whole module;
        # and the _codec_*.pxi parts that _codec.pyx includes
        depends=["kop_fast/_crc32c.h", "kop_fast/_codec.pxd",
                 *sorted(glob("kop_fast/_codec_*.pxi"))],
        include_dirs=["kop_fast"],
        extra_compile_args=["-O3", "-fno-strict-aliasing"],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)
