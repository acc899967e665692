from kop_fast.producer_state import ProducerStateTable, SequenceCheck as S


def accept(table, seq, n=10, pid=7, epoch=0, offset=None, p="t-0"):
    result, _ = table.check(p, pid, epoch, seq, n)
    assert result == S.ACCEPT
    handle = table.begin(p, pid, epoch, seq, n)
    if offset is not None:
        table.persisted(handle, offset)
    return handle


def test_sequence_rules():
    t = ProducerStateTable()
    assert t.check("t-0", -1, -1, -1, 5) == (S.ACCEPT, None)  # not idempotent
    accept(t, 0, offset=100)
    accept(t, 10)  # pipelined while the first is... persisted; second still in flight
    assert t.check("t-0", 7, 0, 0, 10) == (S.DUPLICATE_OF_RECENT, 100)
    assert t.check("t-0", 7, 0, 10, 10) == (S.DUPLICATE_IN_FLIGHT, None)
    assert t.check("t-0", 7, 0, 30, 10)[0] == S.OUT_OF_ORDER_SEQUENCE  # 20 expected
    assert t.check("t-0", 7, 0, 20, 10)[0] == S.ACCEPT
    for seq in range(20, 80, 10):
        accept(t, seq, offset=seq * 1000)
    assert t.check("t-0", 7, 0, 0, 10)[0] == S.DUPLICATE_SEQUENCE  # older than the last five
    assert t.check("t-0", 7, 0, 80, 10)[0] == S.ACCEPT
    assert t.check("t-0", 7, 1, 5, 10)[0] == S.OUT_OF_ORDER_SEQUENCE  # new epoch starts at 0
    accept(t, 0, epoch=1, offset=1)
    assert t.check("t-0", 7, 0, 80, 10)[0] == S.INVALID_PRODUCER_EPOCH
    assert t.check("t-1", 7, 0, 55, 10)[0] == S.ACCEPT  # per partition; unknown -> accepted


def test_sequence_wraps_and_forget():
    t = ProducerStateTable()
    accept(t, (1 << 31) - 5, n=5, offset=1)
    assert t.check("t-0", 7, 0, 0, 5)[0] == S.ACCEPT  # wrapped to 0
    t.forget("t-0", 7)
    assert t.check("t-0", 7, 0, 12345, 5)[0] == S.ACCEPT


# -- rebuilt from stored batches (a proxy taking a partition over) -----------------------------
def stored(pid, epoch, first, n, offset):
    """A tuple as PartitionLog.recent_producer_batches gives it."""
    return pid, epoch, first, (first + n - 1) % (1 << 31), offset


def test_restore_answers_retries_with_stored_offsets_and_accepts_the_next_sequence():
    t = ProducerStateTable()
    t.restore("t-0", [stored(7, 0, seq, 10, 1000 + seq) for seq in range(0, 100, 10)]
              + [stored(8, 3, 0, 1, 5000)])
    # The last five batches of producer 7 come back with their stored offsets.
    for seq in range(50, 100, 10):
        assert t.check("t-0", 7, 0, seq, 10) == (S.DUPLICATE_OF_RECENT, 1000 + seq)
    assert t.check("t-0", 7, 0, 40, 10)[0] == S.DUPLICATE_SEQUENCE  # older than the last five
    assert t.check("t-0", 7, 0, 100, 10) == (S.ACCEPT, None)
    assert t.check("t-0", 7, 0, 110, 10)[0] == S.OUT_OF_ORDER_SEQUENCE  # a gap
    assert t.check("t-0", 7, 0, 90, 5)[0] != S.DUPLICATE_OF_RECENT  # same start, other length
    assert t.check("t-0", 8, 3, 0, 1) == (S.DUPLICATE_OF_RECENT, 5000)
    assert t.check("t-0", 8, 2, 1, 1)[0] == S.INVALID_PRODUCER_EPOCH
    assert t.check("t-1", 7, 0, 50, 10) == (S.ACCEPT, None)  # another partition: unknown
    # Going on after a restore behaves like going on after begin/persisted.
    accept(t, 100, offset=2100)
    assert t.check("t-0", 7, 0, 100, 10) == (S.DUPLICATE_OF_RECENT, 2100)


def test_restore_a_later_epoch_replaces_the_earlier_one():
    t = ProducerStateTable()
    t.restore("t-0", [stored(7, 0, 0, 10, 10), stored(7, 0, 10, 10, 20), stored(7, 1, 0, 5, 30),
                      stored(7, 0, 20, 10, 40)])  # a fenced epoch's straggler changes nothing
    assert t.check("t-0", 7, 1, 0, 5) == (S.DUPLICATE_OF_RECENT, 30)
    assert t.check("t-0", 7, 1, 5, 5) == (S.ACCEPT, None)
    assert t.check("t-0", 7, 0, 10, 10)[0] == S.INVALID_PRODUCER_EPOCH
    assert t.check("t-0", 7, 2, 0, 1) == (S.ACCEPT, None)  # a bump after the restore


def test_restore_wraps_sequences_and_replaces_what_the_table_held():
    t = ProducerStateTable()
    accept(t, 500, offset=1)  # stale state of this process, e.g. from before it gave the partition up
    top = (1 << 31) - 3
    t.restore("t-0", [stored(7, 0, top, 5, 77)])
    assert t.check("t-0", 7, 0, top, 5) == (S.DUPLICATE_OF_RECENT, 77)
    assert t.check("t-0", 7, 0, 2, 5) == (S.ACCEPT, None)  # top + 5 wrapped to 2
    assert t.check("t-0", 7, 0, 510, 10)[0] != S.ACCEPT  # the stale state is gone


def test_restore_respects_the_producer_limit_and_skips_non_idempotent_batches():
    t = ProducerStateTable(max_producers=3)
    t.restore("t-0", [stored(pid, 0, 0, 1, pid) for pid in range(5)] + [(-1, -1, -1, -1, 9)])
    assert [t.check("t-0", pid, 0, 0, 1)[0] for pid in range(5)] == [S.ACCEPT] * 2 + [S.DUPLICATE_OF_RECENT] * 3


def test_drop_partition_forgets_only_that_partition():
    t = ProducerStateTable()
    t.restore("t-0", [stored(7, 0, 0, 10, 1), stored(8, 0, 0, 10, 2)])
    t.restore("t-1", [stored(7, 0, 0, 10, 3)])
    t.drop_partition("t-0")
    assert t.check("t-0", 7, 0, 0, 10) == (S.ACCEPT, None)
    assert t.check("t-0", 8, 0, 55, 10) == (S.ACCEPT, None)  # unknown again: any sequence starts it
    assert t.check("t-1", 7, 0, 0, 10) == (S.DUPLICATE_OF_RECENT, 3)
    t.drop_partition("t-9")  # nothing there: nothing happens
