"""Codec, protocol and coordinator state machines must not do I/O: their source imports no I/O library.

(Checked on our own source: kio, which the protocol layer uses, imports asyncio
internally for unrelated reasons.)
"""

import ast
from pathlib import Path

import kop_fast

PACKAGE = Path(kop_fast.__file__).parent
SANS_IO = ["protocol/*.py", "protocol/extra_schemas/*.py", "coordinator/*.py", "cluster/*.py", "codec.py", "_codec_py.py", "_codec.pyx", "_codec_*.pxi", "config.py",
           "producer_state.py", "pulsar_payload.py",
           "storage/pulsar/naming.py", "storage/pulsar/offset_index.py", "auth/*.py"]
IO_MODULES = {"asyncio", "uvloop", "pulsar", "_pulsar", "socket", "selectors", "threading", "subprocess"}


def imported_modules(path: Path) -> set[str]:
    text = path.read_text()
    if path.suffix in (".pyx", ".pxi"):  # Cython: check the plain import lines only
        lines = [l.strip() for l in text.splitlines() if l.strip().startswith(("import ", "from "))]
        names = set()
        for line in lines:
            if line.startswith("from ") and " cimport " not in line:
                names.add(line.split()[1].split(".")[0])
            elif line.startswith("import "):
                names.update(part.strip().split(".")[0].split(" ")[0] for part in line[7:].split(","))
        return names
    names = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_sans_io_modules_import_no_io_libraries():
    files = [p for pattern in SANS_IO for p in PACKAGE.glob(pattern)]
    assert any(f.name == "headers.py" for f in files)
    offenders = {str(f.relative_to(PACKAGE)): sorted(imported_modules(f) & IO_MODULES) for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}
