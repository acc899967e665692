"""The launcher's own lines and its relayed node lines never share a write (a CI failure once
found "bootstrap.servers=...node-1 | ..." on one line, because print writes the newline apart)."""

from __future__ import annotations

import threading

from kop_fast import local_cluster


class WriteRecorder:
    """A stream that keeps each write() call apart and yields between calls, as a pipe may."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_every_write_is_one_whole_line_under_concurrent_writers():
    stream = WriteRecorder()
    start = threading.Barrier(4)

    def writer(name: str) -> None:
        start.wait()
        for i in range(500):
            local_cluster.say(f"{name} line {i}" + ("\n" if i % 2 else ""), stream)

    threads = [threading.Thread(target=writer, args=(f"node-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(stream.writes) == 2000
    assert all(w.endswith("\n") and w.count("\n") == 1 for w in stream.writes)
    assert sorted(stream.writes) == sorted(f"node-{n} line {i}\n" for n in range(4) for i in range(500))
