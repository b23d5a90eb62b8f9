"""`fueltrace push` given bad files: each bad line is named FILE:LINE with why, a file that
cannot be JSON lines is refused whole, one that cannot be opened is a usage error (exit
2), never a traceback; the good lines still reach Kafka and the exit code is 1."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fueltrace.cli import main
from fueltrace.settings import Settings
from ingest.codec import decode_message
from ingest.jsonl import MAX_LINE_BYTES
from ingest.push import check_file
from ingest.topics import record_topic
from schemas import default_registry
from tests.helpers import read_topic, settings_env

ROOT = Path(__file__).resolve().parent.parent
Factory = Callable[..., dict[str, Any]]


def line(record: Any) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode() + b"\n"


@pytest.fixture
def no_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A clean FUELTRACE_* environment without a broker: only files are checked."""
    for name in [n for n in os.environ if n.startswith("FUELTRACE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FUELTRACE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FUELTRACE_DB", str(tmp_path / "w.duckdb"))
    yield tmp_path
    assert not (tmp_path / "w.duckdb").exists()  # push never touches the warehouse


def push(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    code = main(["push", "--type", "sale", str(path)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, err.splitlines(), out


BAD_FILES: dict[str, tuple[bytes, list[str]]] = {
    # name: (content, the one error line expected, after "FILE")
    "latin1": (b'{"txn_id": "caf\xe9"}\n', [":1: invalid_encoding: not UTF-8: byte 0xe9 at byte "
                                            "16 of the line", "Latin-1"]),
    "gbk": ('{"vehicle_plate": "辽A12345"}\n'.encode("gbk"),
            [":1: invalid_encoding: not UTF-8: byte 0xc1", "GBK"]),
    "nul": (b'{"txn_id": "T\x001"}\n', [":1: invalid_encoding: a NUL byte at byte 14"]),
    "utf16_bom": ('{"txn_id": "T1"}\n'.encode("utf-16"), [": not_json_lines: the file is "
                                                         "UTF-16 text", "iconv"]),
    "gzip": (gzip.compress(b'{"txn_id": "T1"}\n'), [": not_json_lines: the file is "
                                                   "gzip-compressed"]),
    "truncated": (b'{"txn_id": "T1", "station_id": "LN-S', [":1: malformed_json: not JSON",
                                                           "no newline", "cut short"]),
    "array": (b"[1, 2]\n", [":1: schema_violation: record: expected a JSON object, got list"]),
    "number": (b"42\n", [":1: schema_violation: record: expected a JSON object, got int"]),
    "null": (b"null\n", [":1: schema_violation: record: expected a JSON object, got null"]),
    "deep": (b"[" * 100_000 + b"]" * 100_000 + b"\n", [":1: malformed_json: JSON nested too "
                                                      "deeply"]),
    "digits": (b'{"amount_fen": ' + b"9" * 5000 + b"}\n", [":1: malformed_json: a number with "
                                                         "thousands of digits"]),
    "empty": (b"", [": empty_file: no records"]),
    "blank": (b"\n  \n\r\n", [": empty_file: no records"]),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_bad_file_is_reported_by_file_and_line(
    no_broker: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    content, expected = BAD_FILES[name]
    path = no_broker / f"{name}.jsonl"
    path.write_bytes(content)
    code, errors, out = push(path, capsys)
    assert code == 1
    assert len(errors) == 1 and errors[0].startswith(str(path) + expected[0]), errors
    assert all(words in errors[0] for words in expected[1:]), errors
    assert out.startswith("0 records sent in 0 messages")


def test_binary_garbage_is_refused_line_by_line_without_a_crash(
    no_broker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = random.Random(7).randbytes(64 * 1024)
    path = no_broker / "garbage.bin"
    path.write_bytes(garbage)
    code, errors, out = push(path, capsys)
    lines = garbage.count(b"\n") + (not garbage.endswith(b"\n"))
    assert code == 1
    assert len(errors) == lines  # every line refused, each once, in order
    assert [e.split(":")[1] for e in errors] == [str(n) for n in range(1, lines + 1)]
    assert {e.split(": ")[1] for e in errors} <= {"invalid_encoding", "malformed_json"}
    assert out.startswith("0 records sent") and f"{lines} lines rejected" in out


def test_a_huge_line_is_skipped_without_reading_it_into_memory(
    no_broker: Path, capsys: pytest.CaptureFixture[str], sale_factory: Factory
) -> None:
    path = no_broker / "huge.jsonl"
    with open(path, "wb") as out:
        out.write(b"[]\n")
        out.write(b'{"txn_id": "')
        for _ in range(50):
            out.write(b"x" * 1024 * 1024)  # 50 MB on line 2
        out.write(b'"}\n')
        out.write(b"{}\n")
        out.write(b"y" * (MAX_LINE_BYTES + 1))  # one byte over, no newline: the end
    tracemalloc.start()
    try:
        good, errors = check_file("sale", path, Settings())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_LINE_BYTES  # not the 50 MB
    assert good == []
    assert [(e.where.line, e.reason) for e in errors] == [
        (1, "schema_violation"), (2, "line_too_long"), (3, "schema_violation"),
        (4, "line_too_long")]  # fmt: skip
    code, lines, _ = push(path, capsys)
    assert code == 1
    assert lines[1] == (f"{path}:2: line_too_long: line longer than {MAX_LINE_BYTES} bytes "
                        "(one record per line; the limit of `fueltrace push`): not read")


def test_a_line_of_exactly_the_limit_is_read(no_broker: Path, sale_factory: Factory) -> None:
    record = line(sale_factory())
    padded = record[:-2] + b" " * (MAX_LINE_BYTES - len(record) + 1) + b"}\n"
    assert len(padded) == MAX_LINE_BYTES + 1  # the limit, plus its newline
    path = no_broker / "edge.jsonl"
    path.write_bytes(padded + padded.rstrip(b"\n") + b" \n")
    good, errors = check_file("sale", path, Settings())
    assert [n for n, _ in good] == [1]
    assert [(e.where.line, e.reason) for e in errors] == [(2, "line_too_long")]


def test_a_utf8_byte_order_mark_is_skipped(no_broker: Path, sale_factory: Factory) -> None:
    path = no_broker / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + line(sale_factory()))
    good, errors = check_file("sale", path, Settings())
    assert errors == [] and len(good) == 1


@pytest.mark.parametrize(("target", "words"), [
    ("missing.jsonl", "no such file"),
    (".", "a directory, not a JSON-lines file"),
])  # fmt: skip
def test_a_file_that_cannot_be_opened_is_a_usage_error(
    no_broker: Path, capsys: pytest.CaptureFixture[str], target: str, words: str
) -> None:
    path = no_broker / target
    code = main(["push", "--type", "sale", str(path)])
    _, err = capsys.readouterr()
    assert code == 2
    assert err == f"fueltrace push: error: {path}: {words}\n"


def test_the_real_cli_never_shows_a_traceback(tmp_path: Path) -> None:
    """The console entry point as a user runs it, with every kind of bad line at once."""
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"".join(content for name, (content, _) in BAD_FILES.items()
                              if name not in ("utf16_bom", "gzip", "truncated", "empty")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUELTRACE_")}
    env |= {"FUELTRACE_STATE_DIR": str(tmp_path / "state"), "FUELTRACE_DB": str(tmp_path / "w")}
    for target, code in ((path, 1), (tmp_path / "missing.jsonl", 2), (tmp_path, 2)):
        done = subprocess.run([sys.executable, "-m", "fueltrace", "push", "--type", "sale",
                               str(target)], env=env, cwd=ROOT, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert done.returncode == code, done.stderr
        assert "Traceback" not in done.stderr and str(target) in done.stderr


@pytest.mark.broker
def test_good_lines_still_go_and_only_they(
    settings: Settings, tmp_path: Path, sale_factory: Factory
) -> None:
    good = [sale_factory() for _ in range(3)]
    content = b"".join([
        line(good[0]),
        b'{"txn_id": "caf\xe9"}\n',
        b"\x00\x00\x00\n",
        line(good[1]),
        b'{"txn_id": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n',
        b'["not", "an", "object"]\n',
        line(good[2]),
        line(sale_factory())[:40],  # cut short: no newline
    ])  # fmt: skip
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(content)
    env = settings_env(settings)
    done = subprocess.run([sys.executable, "-m", "fueltrace", "push", "--type", "sale",
                           str(path)], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert [e.split(": ")[0] for e in done.stderr.splitlines()] == [
        f"{path}:{n}" for n in (2, 3, 5, 6, 8)]
    assert done.stdout.startswith("3 records sent in 3 messages; 5 lines rejected")
    messages = read_topic(settings, record_topic(settings, "sale"), expected=4, timeout_s=3)
    sent = [r for m in messages
            for r in decode_message(m.value, "sale", default_registry()).records]
    assert sorted(r["txn_id"] for r in sent) == sorted(g["txn_id"] for g in good)


def test_an_output_file_that_cannot_be_written_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`fueltrace recall -o` into a directory, or a directory that does not exist."""
    from tests.processors.scenario import dispatch, load, station
    from warehouse.connection import connect

    db = tmp_path / "w.duckdb"
    con = connect(db)
    load(con, db, facility=[station("S1")], dispatch=[dispatch("P1", "B", "S1", 10_000, 1)])
    con.close()
    monkeypatch.setenv("FUELTRACE_DB", str(db))
    for target, words in ((tmp_path, "Is a directory"),
                          (tmp_path / "no" / "r.csv", "No such file or directory")):
        code = main(["recall", "B", "-o", str(target)])
        _, err = capsys.readouterr()
        assert code == 2
        assert err == f"fueltrace recall: error: {target}: {words}\n"
    assert main(["recall", "B", "-o", str(tmp_path / "r.csv")]) == 0  # and it does work
    assert (tmp_path / "r.csv").read_text().startswith("batch_id")
