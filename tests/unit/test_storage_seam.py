"""The server knows storage only through `kop_fast.storage.api`.

Nothing under kop_fast/server imports pulsar-client or a storage implementation
(checked on the source, imports inside functions included, and at run time:
loading the whole server with its handlers loads no pulsar module). Only the
composition root, kop_fast/app.py, picks the Pulsar storage.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import kop_fast

PACKAGE = Path(kop_fast.__file__).parent
FORBIDDEN_IN_SERVER = ("pulsar", "_pulsar", "kop_fast.storage.pulsar", "kop_fast.storage.memory")


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_SERVER)


def test_server_source_imports_only_the_storage_interface():
    files = sorted((PACKAGE / "server").rglob("*.py"))
    assert any(f.name == "fetch.py" for f in files) and any(f.name == "group_coordinator.py" for f in files)
    offenders = {str(f.relative_to(PACKAGE)): sorted(n for n in imports_of(f) if forbidden(n)) for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}
    storage_imports = {n for f in files for n in imports_of(f) if n.startswith("kop_fast.storage")}
    assert storage_imports and all(n.startswith("kop_fast.storage.api") for n in storage_imports), storage_imports


def test_the_check_sees_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from kop_fast.storage.pulsar.bridge import PulsarError\n    import _pulsar\n")
    assert sorted(n for n in imports_of(bad) if forbidden(n)) == [
        "_pulsar", "kop_fast.storage.pulsar.bridge", "kop_fast.storage.pulsar.bridge.PulsarError"]


def test_loading_the_server_loads_no_pulsar_module():
    code = ("import sys, kop_fast.server.node, kop_fast.server.handlers; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pulsar', '_pulsar') "
            "or m.startswith('kop_fast.storage.pulsar')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_only_the_composition_root_picks_the_pulsar_storage():
    users = sorted(str(f.relative_to(PACKAGE)) for f in PACKAGE.rglob("*.py")
                   if not f.is_relative_to(PACKAGE / "storage")
                   and any(n.startswith("kop_fast.storage.pulsar") for n in imports_of(f)))
    assert users == ["app.py"]
