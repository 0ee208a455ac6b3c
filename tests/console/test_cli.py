"""``poise user``: accounts from the command line, passwords from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from poise.cli import main


def test_user_add_list_password_unlock(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("POISE_USER_PASSWORD", "a long first password")
    assert main(["user", "add", "anna", "--role", "admin", "--data", str(tmp_path)]) == 0
    assert main(["user", "add", "ben", "--role", "therapist", "--data", str(tmp_path)]) == 0
    assert main(["user", "list", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "anna" in out
    assert "admin" in out
    assert "ben" in out
    assert "a long first password" not in out
    assert main(["user", "password", "ben", "--data", str(tmp_path)]) == 0
    assert main(["user", "unlock", "ben", "--data", str(tmp_path)]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["user", "add", "Anna", "--role", "admin"], "user name 'Anna'"),
        (["user", "unlock", "nobody"], "no user 'nobody'"),
    ],
)
def test_user_refusals_exit_2(tmp_path: Path, monkeypatch, capsys, argv, message) -> None:
    monkeypatch.setenv("POISE_USER_PASSWORD", "a long first password")
    assert main([*argv, "--data", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_user_add_without_password_or_terminal_exits_2(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("POISE_USER_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["user", "add", "anna", "--role", "admin", "--data", str(tmp_path)]) == 2
    assert "POISE_USER_PASSWORD" in capsys.readouterr().err


def test_duplicate_user_exits_2(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("POISE_USER_PASSWORD", "a long first password")
    assert main(["user", "add", "anna", "--role", "admin", "--data", str(tmp_path)]) == 0
    assert main(["user", "add", "anna", "--role", "admin", "--data", str(tmp_path)]) == 2
    assert "exists already" in capsys.readouterr().err


def test_console_refuses_a_bad_site_id(tmp_path: Path, capsys) -> None:
    assert main(["console", "--data", str(tmp_path), "--site", "Main Street"]) == 2
    assert "--site: site id 'Main Street'" in capsys.readouterr().err
