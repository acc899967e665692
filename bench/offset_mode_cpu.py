"""kop-fast's own CPU per record (its process only, not pulsar-lite) with consecutive and packed offsets.

    python -m bench.offset_mode_cpu

300,000 records of 100 B produced (confluent-kafka, linger 5 ms, acks=all) into one
partition and consumed back, three rounds alternating the modes, a fresh server each.
"""
import os
import pathlib
import shutil
import tempfile
import time

from tests.support import KopServer
from tests.interop.test_produce_fetch import consumer_conf, create_topic, unique
from confluent_kafka import Producer, Consumer, TopicPartition, OFFSET_BEGINNING
TICK = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK
N = 300_000
res = {"consecutive": [], "packed": []}
for rnd in range(3):
    for mode in ("consecutive", "packed"):
        d = pathlib.Path(tempfile.mkdtemp())
        srv = KopServer(d / "data", "--offset-mode", mode).start()
        try:
            pid = srv.process.pid
            topic = unique("cpu"); create_topic(srv.bootstrap, topic)
            p = Producer({"bootstrap.servers": srv.bootstrap, "linger.ms": 5, "acks": "all"})
            c0 = cpu(pid); t0 = time.monotonic()
            for i in range(N):
                while True:
                    try:
                        p.produce(topic, b"x" * 100, partition=0); break
                    except BufferError:
                        p.poll(0.01)
            p.flush(60)
            c1 = cpu(pid); t1 = time.monotonic()
            c = Consumer(consumer_conf(srv.bootstrap, **{"fetch.queue.backoff.ms": 10}))
            c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            got = 0
            while got < N:
                got += len([m for m in c.consume(10000, 1.0) if not m.error()])
            c2 = cpu(pid); t2 = time.monotonic()
            c.close()
            res[mode].append(((c1 - c0) / N * 1e6, (c2 - c1) / N * 1e6, t1 - t0, t2 - t1))
            print(mode, "produce %.2f us/rec cpu %.2fs wall, consume %.2f us/rec cpu %.2fs wall" % (res[mode][-1][0], res[mode][-1][2], res[mode][-1][1], res[mode][-1][3]), flush=True)
        finally:
            srv.stop()
            shutil.rmtree(d, ignore_errors=True)
