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
