"""Starting, waiting on and stopping `kaanha` processes in the end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kaanha.testing.databases import scratch_postgres_database
from tests.e2e.test_serve_process import KAANHA


def start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`kaanha *args` in the background, its output appended to `log` (shown when a wait times out)."""
    with log.open("ab") as output:
        return subprocess.Popen([KAANHA, *args], env=env, stdout=output, stderr=subprocess.STDOUT)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, log: Path, *, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text(errors='replace')[-4000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if it hasn't ended within 20 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def crash_test_database(folder: Path, *, prefix: str) -> Iterator[str]:
    """A database of the test's own: SQLite in `folder`, or a scratch PostgreSQL one when the suite runs on it."""
    requested = os.environ.get("KAANHA_TEST_DATABASE_URL")
    if not requested:
        yield f"sqlite+aiosqlite:///{folder / 'kaanha.db'}"
        return
    with scratch_postgres_database(requested, prefix=prefix) as url:
        yield url
