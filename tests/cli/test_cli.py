"""The `kaanha` command line as people run it: a real process, a data dir of its own, SQLite inside it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

KAANHA = str(Path(sys.executable).parent / "kaanha")
KEY = re.compile(r"kh_[a-z0-9]{10}_[A-Za-z0-9]{40}")


class Cli:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        # No KAANHA_DATABASE_URL: the database is SQLite in the data dir, as on a first `make run`.
        self.env = {name: value for name, value in os.environ.items() if not name.startswith("KAANHA_")}
        self.env["KAANHA_DATA_DIR"] = str(data_dir)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([KAANHA, *args], env=self.env, capture_output=True, text=True, timeout=120)

    def json(self, *args: str) -> dict[str, Any]:
        done = self.run(*args, "--json")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.strip().splitlines()
        assert len(lines) == 1, done.stdout  # one JSON object, nothing else on stdout
        result: dict[str, Any] = json.loads(lines[0])
        return result

    def fails(self, *args: str, says: str) -> str:
        """The command exits non-zero with a one-line-or-so message on stderr, and no traceback."""
        done = self.run(*args)
        assert done.returncode != 0, done.stdout
        assert says in done.stderr, done.stderr
        assert "Traceback" not in done.stderr + done.stdout, done.stderr
        return done.stderr


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


def test_orgs_create_prints_one_json_object(cli: Cli) -> None:
    org = cli.json("orgs", "create", "Acme Traders")
    assert set(org) == {"id", "name", "plan"}
    assert org["id"].startswith("org_")
    assert org["name"] == "Acme Traders"
    assert org["plan"] == "starter"
    assert (cli.data_dir / "kaanha.db").is_file()


def test_orgs_create_on_the_pro_plan(cli: Cli) -> None:
    assert cli.json("orgs", "create", "Globex", "--plan", "pro")["plan"] == "pro"


def test_orgs_create_without_json_prints_a_sentence(cli: Cli) -> None:
    done = cli.run("orgs", "create", "Initech")
    assert done.returncode == 0, done.stderr
    assert "Initech" in done.stdout
    assert "org_" in done.stdout


def test_orgs_create_refuses_an_unknown_plan(cli: Cli) -> None:
    message = cli.fails("orgs", "create", "Acme", "--plan", "gold", says="Unknown plan 'gold'")
    assert "starter" in message
    assert "pro" in message


def test_keys_create_prints_the_key_once_with_all_scopes(cli: Cli) -> None:
    org = cli.json("orgs", "create", "Acme")
    key = cli.json("keys", "create", "--org", "Acme", "--name", "ci")
    assert set(key) == {"id", "name", "key", "scopes", "expiresAt"}
    assert key["id"].startswith("key_")
    assert key["name"] == "ci"
    assert KEY.fullmatch(key["key"])
    assert {"contacts:read", "messages:send", "media:write", "payment_links:write"} <= set(key["scopes"])
    assert key["expiresAt"] is None
    # ORG is an id as well as an exact name.
    assert cli.json("keys", "create", "--org", org["id"], "--name", "by id")["key"] != key["key"]


def test_keys_create_with_expiry_and_scopes(cli: Cli) -> None:
    cli.json("orgs", "create", "Acme")
    key = cli.json(
        "keys",
        "create",
        "--org",
        "Acme",
        "--name",
        "reader",
        "--expires-at",
        "2030-01-31",
        "--scopes",
        "messages:send contacts:read",
    )
    assert key["expiresAt"] == "2030-01-31T00:00:00Z"
    assert sorted(key["scopes"]) == ["contacts:read", "messages:send"]
    later = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    timed = cli.json("keys", "create", "--org", "Acme", "--name", "timed", "--expires-at", later.isoformat())
    assert timed["expiresAt"] == later.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--expires-at", "next tuesday"], "is not a date"),
        (["--expires-at", "2020-01-01"], "in the future"),
        (["--scopes", "contacts:read bogus:scope"], "unknown scopes: bogus:scope"),
        (["--name", ""], "name: String should have at least 1 character"),
    ],
)
def test_keys_create_refuses_bad_options_readably(cli: Cli, options: list[str], says: str) -> None:
    cli.json("orgs", "create", "Acme")
    message = cli.fails("keys", "create", "--org", "Acme", "--name", "t", *options, says=says)
    assert message.startswith("error: ")
    assert "pydantic" not in message  # a sentence, not a validation report


def test_keys_create_for_an_unknown_org(cli: Cli) -> None:
    cli.json("orgs", "create", "Acme")
    cli.fails("keys", "create", "--org", "Nobody Ltd", "--name", "t", says="no organization 'Nobody Ltd'")
    cli.fails("keys", "create", "--org", "acme", "--name", "t", says="no organization 'acme'")  # exact name only


def test_sandbox_receive_for_an_unknown_org(cli: Cli) -> None:
    cli.fails("sandbox", "receive", "--org", "Nobody", "--from", "+919876543210", "--text", "hi", says="Nobody")


def test_sandbox_receive_stores_the_message(cli: Cli) -> None:
    cli.json("orgs", "create", "Acme")
    message = cli.json("sandbox", "receive", "--org", "Acme", "--from", "+919876543210", "--text", "hi")
    assert message["direction"] == "inbound"
    assert message["status"] == "received"
    assert message["content"]["text"] == "hi"


def test_db_upgrade_is_idempotent(cli: Cli) -> None:
    first = cli.run("db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert "up to date" in first.stdout
    org = cli.json("orgs", "create", "Acme")
    second = cli.run("db", "upgrade")
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout
    # What was there before the second upgrade still is.
    assert cli.json("keys", "create", "--org", org["id"], "--name", "after")["name"] == "after"


def test_demo_prints_a_key_and_a_curl_line_and_keeps_the_key(cli: Cli) -> None:
    first = cli.run("demo", "--port", "8123")
    assert first.returncode == 0, first.stderr
    found = re.search(r"API key:\s+(\S+)", first.stdout)
    assert found, first.stdout
    key = found.group(1)
    assert KEY.fullmatch(key)
    assert f"curl -s http://127.0.0.1:8123/api/whatsapp-api/status -H 'Authorization: Bearer {key}'" in first.stdout
    assert (cli.data_dir / "demo-api-key").read_text().strip() == key

    second = cli.run("demo", "--port", "8123")
    assert second.returncode == 0, second.stderr
    assert f"API key:        {key}" in second.stdout
    assert second.stdout.count("Demo Company (org_") == 1
    organizations = re.findall(r"Demo Company \((org_\w+)\)", first.stdout + second.stdout)
    assert len(set(organizations)) == 1  # the same organization, not a second one
