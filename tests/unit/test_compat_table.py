"""The README's compatibility table is exactly what the client tests' compat marks say."""

from tests.interop.clients import compat


def test_readme_table_matches_the_tests_compat_marks():
    rows = compat.collect()
    assert rows, "no @pytest.mark.compat marks found under tests/interop"
    assert compat.readme_table() == compat.render(rows), (
        "README.md's compatibility table is stale: run `python -m tests.interop.clients.compat`")


def test_every_listed_client_has_at_least_one_test():
    covered = {r[0] for r in compat.collect()}
    assert set(compat.CLIENTS) <= covered, f"clients in the table without tests: {set(compat.CLIENTS) - covered}"


def test_marks_are_read_from_source(tmp_path):
    (tmp_path / "test_x.py").write_text(
        "import pytest\n@pytest.mark.compat('kcat', 'lists topics')\ndef test_a(): pass\n"
        "@pytest.mark.compat('kcat', 'transactions', result='not supported')\ndef test_b(): pass\n")
    rows = compat.collect(tmp_path)
    assert [(r[0], r[1], r[2]) for r in rows] == [("kcat", "lists topics", "works"),
                                                   ("kcat", "transactions", "not supported")]
