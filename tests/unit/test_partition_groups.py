"""PartitionGroups as a whole: DescribeGroups, ListGroups, DeleteGroups, unloading, loading,
the shared timer queue, and the coordinator package staying sans-io."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from kop_fast.coordinator import GroupConfig, GroupState, LeaveMember
from kop_fast.coordinator import records as rec
from kop_fast.protocol.errors import ErrorCode
from tests.unit.group_harness import Harness, sub

E = ErrorCode


# ============================================================= describe / list / delete / misc


def test_describe_list_and_delete_groups():
    h = Harness()
    (a, b), gen = h.stable_group(2)
    h.commit({("t9", 0): 1}, group="simple")  # an offsets-only group, Empty

    d = h.partition.describe_group("g")
    assert (d.error_code, d.state, d.protocol_type, d.protocol_data) == (E.none, "Stable", "consumer", "range")
    assert [(m.member_id, m.client_id, m.metadata, m.assignment) for m in d.members] == [
        (a, "c0", sub("t1"), f"assign-{a}".encode()),
        (b, "c1", sub("t1"), f"assign-{b}".encode()),
    ]
    assert h.partition.describe_group("missing").state == "Dead"
    assert h.partition.describe_group("missing").error_code == E.none
    assert h.partition.describe_group("missing", api_version=6).error_code == E.group_id_not_found

    listed = h.partition.list_groups()
    assert {(x.group_id, x.protocol_type, x.state) for x in listed.groups} == {
        ("g", "consumer", "Stable"),
        ("simple", "", "Empty"),
    }
    assert [x.group_id for x in h.partition.list_groups(["empty"]).groups] == ["simple"]
    assert [x.group_id for x in h.partition.list_groups(["Stable", "Dead"]).groups] == ["g"]
    assert h.partition.list_groups(types_filter=["consumer"]).groups == []
    assert len(h.partition.list_groups(types_filter=["Classic"]).groups) == 2

    h.join(a, client="c0")  # non-Stable: no metadata in describe
    d = h.partition.describe_group("g")
    assert d.state == "PreparingRebalance" and d.protocol_data == "" and d.members[0].metadata == b""

    w = h.waiter("del")
    h.dispatch(h.partition.delete_groups(["g", "simple", "missing"], w, h.now))
    res = {r.group_id: r.error_code for r in h.answer(w).results}
    assert res == {"g": E.non_empty_group, "simple": E.none, "missing": E.group_id_not_found}
    assert "simple" not in h.partition and "g" in h.partition
    tomb = [rec.decode_record(r) for r in h.log if r.value is None]
    assert (rec.OffsetCommitKey("simple", "t9", 0), None) in tomb


def test_delete_group_answer_waits_for_tombstones():
    h = Harness(auto_persist=False)
    ids = [h.member_id_for("c0")]
    h.join(ids[0], client="c0")
    h.advance(3000)
    h.sync(ids[0], 1, {ids[0]: b"x"})
    h.persist_pending()
    h.leave(LeaveMember(ids[0]))
    h.persist_pending()
    assert h.group().state is GroupState.EMPTY
    w = h.waiter("del")
    h.dispatch(h.partition.delete_groups(["g"], w, h.now))
    assert h.answer(w) is None and "g" not in h.partition
    assert [rec.decode_record(r) for r in h.pending[0].records] == [(rec.GroupMetadataKey("g"), None)]
    h.persist_pending()
    assert h.answer(w).results[0].error_code == E.none
    assert h.partition.describe_group("g", api_version=6).error_code == E.group_id_not_found


def test_unload_answers_parked_requests_with_not_coordinator():
    h = Harness()
    w = h.join(h.member_id_for("c"), client="c")
    h.dispatch(h.partition.unload(["g"], h.now))
    assert h.answer(w).error_code == E.not_coordinator
    assert "g" not in h.partition
    # Only the periodic retention check is left.
    assert h.partition.next_deadline_ms() == 1_000_000 + GroupConfig().offsets_retention_check_interval_ms


def test_loading_answers():
    h = Harness()
    h.partition.loading = True
    assert h.answer(h.join()).error_code == E.coordinator_load_in_progress
    assert h.heartbeat("m", 1) == E.none  # Kafka answers heartbeats blindly while loading
    assert h.answer(h.sync("m", 1)).error_code == E.rebalance_in_progress
    assert h.answer(h.commit({("t", 0): 1})).partitions[0].error_code == E.coordinator_load_in_progress
    assert h.partition.list_groups().error_code == E.coordinator_load_in_progress


def test_next_deadline_tracks_timers_and_tick_is_idempotent():
    h = Harness()
    (a, b), gen = h.stable_group(2, session=10_000)
    d = h.partition.next_deadline_ms()
    assert d is not None and h.now < d <= h.now + 10_000
    before = dict(h.answers)
    h.dispatch(h.partition.tick(h.now))  # nothing due
    assert h.answers == before and h.group().state is GroupState.STABLE


def test_coordinator_modules_import_neither_asyncio_nor_pulsar():
    root = Path(__file__).resolve().parents[2]
    code = textwrap.dedent(
        f"""
        import sys, types
        # Bypass kop_fast/__init__.py so only the coordinator package is measured.
        pkg = types.ModuleType("kop_fast")
        pkg.__path__ = [{str(root / "kop_fast")!r}]
        sys.modules["kop_fast"] = pkg
        import importlib, pkgutil
        import kop_fast.coordinator
        # Every module of the package, so that a new one cannot escape the check.
        names = [i.name for i in pkgutil.iter_modules(kop_fast.coordinator.__path__)]
        for name in names:
            importlib.import_module("kop_fast.coordinator." + name)
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("asyncio", "pulsar", "_pulsar", "uvloop"))
        print(",".join(sorted(names)))
        print(",".join(bad))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    imported, bad = proc.stdout.split("\n")[:2]
    assert {"group", "partition_groups", "records", "offsets", "clock", "errors"} <= set(imported.split(","))
    assert bad.strip() == "", f"coordinator pulled in I/O modules: {bad.strip()}"
