"""A broken state file or a bad flag: one line saying what and what to do, never a traceback.

Also: the state file holds CRM tokens, so it is created readable by its owner only.
"""

from __future__ import annotations

import ctypes
import os
import socket
import stat
import subprocess
import sys

import pytest

from connector.crm import Cursor
from connector.installs import Installs
from connector.state import State

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2

COMMANDS = [["sync"], ["report"], ["serve", "--port", "0"], ["schedule"]]


def as_an_ordinary_user() -> None:
    """Run the child without root's power to write read-only files (a no-op for other users)."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
            libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)


def run(args: list[str], env: dict, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "connector", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=30, preexec_fn=as_an_ordinary_user)


def env_for(cli_env: dict, state_file) -> dict:
    return {**cli_env, "STATE_URL": f"sqlite:///{state_file}", "LOG_LEVEL": "WARNING"}


def assert_one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_damaged_state_file_names_the_file_and_says_move_it_aside(command, cli_env, tmp_path, portal):
    damaged = tmp_path / "state.db"
    damaged.write_bytes(b"not a database, just bytes left by a bad copy\n" * 200)
    result = run(command, env_for(cli_env, damaged), tmp_path)
    assert result.returncode == 1
    assert_one_line_error(result, str(damaged), "damaged", "move it aside", "markers")
    assert portal.stats()["requests_total"] == 0, "a run on a damaged state stops before calling the CRM"


def test_a_page_found_damaged_mid_run_is_one_line_too(cli_env, tmp_path):
    path = tmp_path / "state.db"
    state = State(path)
    state.db.executemany("INSERT INTO purchases (account, id, customer_id, data, seen_run) "
                         "VALUES (?, ?, ?, ?, ?)",
                         [("acc", str(i), str(i % 50), "{}", 1) for i in range(20000)])
    state.close()
    pages = path.stat().st_size // 4096
    with path.open("r+b") as f:  # the header and the first pages stay sound, so the file opens
        for page in range(pages // 2, pages):
            f.seek(page * 4096)
            f.write(b"\xff" * 64)
    result = run(["report"], env_for(cli_env, path), tmp_path)
    assert result.returncode == 1
    assert_one_line_error(result, "damaged", "STATE_URL", "move it aside")


@pytest.mark.parametrize("folder_writable", [True, False], ids=["file-read-only", "folder-read-only"])
@pytest.mark.parametrize("command", [c for c in COMMANDS if c[0] != "report"], ids=lambda c: c[0])
def test_a_read_only_state_file_is_named_with_the_fix_before_any_work(command, folder_writable, cli_env,
                                                                     tmp_path, portal):
    folder = tmp_path / "state"
    State(folder / "state.db").close()
    (folder / "state.db").chmod(0o444)
    if not folder_writable:
        folder.chmod(0o555)
    try:
        result = run(command, env_for(cli_env, folder / "state.db"), tmp_path)
    finally:
        folder.chmod(0o755)
    assert result.returncode == 1
    assert_one_line_error(result, str(folder / "state.db"), "read-only", "writable")
    assert portal.stats()["requests_total"] == 0


def test_a_report_reads_a_read_only_state_and_says_plainly_when_even_reading_fails(cli_env, tmp_path):
    readable, unreadable = tmp_path / "a", tmp_path / "b"
    for folder in (readable, unreadable):
        State(folder / "state.db").close()
        (folder / "state.db").chmod(0o444)
    answer = run(["report"], env_for(cli_env, readable / "state.db"), tmp_path)
    assert answer.returncode == 2 and "no sync has run yet" in answer.stderr  # a report only reads
    unreadable.chmod(0o555)  # SQLite cannot even make its side files now
    try:
        result = run(["report"], env_for(cli_env, unreadable / "state.db"), tmp_path)
    finally:
        unreadable.chmod(0o755)
    assert result.returncode == 1
    assert_one_line_error(result, str(unreadable / "state.db"), "read-only")


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_serve_with_an_impossible_port_is_bad_usage_naming_the_flag(port, cli_env, tmp_path):
    result = run(["serve", "--port", port], env_for(cli_env, tmp_path / "state.db"), tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result, "--port", "65535")


@pytest.mark.parametrize("workers", ["0", "65", "two"])
def test_serve_with_an_impossible_number_of_workers_is_bad_usage_naming_the_flag(workers, cli_env, tmp_path):
    result = run(["serve", "--workers", workers], env_for(cli_env, tmp_path / "state.db"), tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result, "--workers", "1 to 64")


def test_serve_with_workers_on_a_port_in_use_exits_1_naming_it(cli_env, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(["serve", "--port", str(port), "--workers", "2"], env_for(cli_env, tmp_path / "state.db"),
                     tmp_path)
    assert result.returncode == 1
    assert_one_line_error(result, f"127.0.0.1:{port}", "another process listens there")


def test_serve_on_a_port_in_use_exits_1_naming_it(cli_env, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(["serve", "--port", str(port)], env_for(cli_env, tmp_path / "state.db"), tmp_path)
    assert result.returncode == 1
    assert_one_line_error(result, f"127.0.0.1:{port}", "--port")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("opener", [State, Installs], ids=["sync-state", "webapp-installs"])
def test_the_state_file_and_its_side_files_are_created_private(opener, tmp_path):
    old = os.umask(0o022)  # the usual umask, which made the file world-readable
    try:
        path = tmp_path / "new" / "state.db"
        first = opener(path)
        state = State(path)  # open while the WAL side files exist
        state.save_cursor("acc", Cursor("2026-01-01"))
        side = [p for p in path.parent.iterdir() if p != path]
        assert side, "SQLite keeps -wal/-shm files next to the state while it is open"
        assert {p.name: mode(p) for p in [path, *side]} == {p.name: 0o600 for p in [path, *side]}
        state.close()
        if hasattr(first, "close"):
            first.close()
    finally:
        os.umask(old)


def test_an_existing_state_file_keeps_the_mode_its_owner_gave_it(tmp_path):
    path = tmp_path / "state.db"
    State(path).close()
    path.chmod(0o640)  # the admin shares it with a group on purpose
    State(path).close()
    assert mode(path) == 0o640


def test_a_state_file_made_world_readable_before_is_closed_to_others_when_opened(tmp_path):
    path = tmp_path / "state.db"
    State(path).close()
    os.chmod(path, 0o644)  # as files made before this release were
    state = State(path)
    try:
        assert mode(path) == 0o640  # others lose their access; the group is the admin's choice
    finally:
        state.close()
