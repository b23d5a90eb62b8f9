"""`fueltrace token create/list/revoke` on the warehouse file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fueltrace.cli import main
from warehouse import access
from warehouse.connection import connect


def test_create_list_revoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("FUELTRACE_DB", str(tmp_path / "w.duckdb"))
    assert main(["token", "create", "--role", "city_regulator", "--scope", "Dalian",
                 "--label", "Dalian bureau, desk 3"]) == 0  # fmt: skip
    out, err = capsys.readouterr()
    token = out.strip()
    assert token.startswith("ft_") and "Shown once" in err
    token_id = token.split("_")[1]
    assert main(["token", "list", "--json"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["token_id"], row["role"], row["scope"]) == (token_id, "city_regulator", "Dalian")
    assert token.split("_", 2)[2] not in json.dumps(row)
    con = connect(tmp_path / "w.duckdb")
    principal = access.verify_token(con, token, datetime.now(UTC))
    con.close()
    assert principal is not None and principal.city == "Dalian"
    assert main(["token", "revoke", token_id]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["token", "list"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["token", "list", "--all"]) == 0
    assert "revoked" in capsys.readouterr().out
    con = connect(tmp_path / "w.duckdb")
    assert access.verify_token(con, token, datetime.now(UTC)) is None
    con.close()


@pytest.mark.parametrize("args", [
    ["--role", "station", "--label", "no scope"],
    ["--role", "city_regulator", "--scope", "Gotham", "--label", "x"],
    ["--role", "provincial_regulator", "--scope", "Dalian", "--label", "x"],
])  # fmt: skip
def test_a_token_without_its_scope_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str],
                                              args: list[str]) -> None:  # fmt: skip
    monkeypatch.setenv("FUELTRACE_DB", str(tmp_path / "w.duckdb"))
    assert main(["token", "create", *args]) == 2
    assert "error" in capsys.readouterr().err
    assert main(["token", "revoke", "nope"]) == 2
