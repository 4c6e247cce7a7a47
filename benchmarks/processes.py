"""Servers and helpers run as child processes: `kaanha serve`, the bare app, the CLI, the load generator."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from benchmarks.loadgen import LoadSpec

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


class BenchmarkError(Exception):
    """Something the benchmark needs failed; the message says what."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def kaanha_env(data_dir: Path, database_url: str) -> dict[str, str]:
    """The environment of every `kaanha` child: its own data dir and database, a limiter that never refuses."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("KAANHA_")}
    env.update(
        KAANHA_DATA_DIR=str(data_dir),
        KAANHA_DATABASE_URL=database_url,
        KAANHA_RATE_LIMITS__API="100000000/minute",
        KAANHA_LOG_LEVEL="WARNING",
    )
    return env


def kaanha_json(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run `kaanha ARGS --json` and return the object it prints."""
    done = subprocess.run([str(BIN / "kaanha"), *args, "--json"], env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BenchmarkError(f"kaanha {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@contextmanager
def running(
    command: list[str], *, env: dict[str, str], log: Path, ready_url: str, headers: dict[str, str]
) -> Iterator[None]:
    """Start `command`, wait until `ready_url` answers 200, and stop it with SIGTERM afterwards."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_ready(process, ready_url, headers, log)
        yield
    finally:
        _stop(process)


def _wait_ready(process: subprocess.Popen[bytes], url: str, headers: dict[str, str], log: Path) -> None:
    deadline = time.monotonic() + 60
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchmarkError(f"server exited with {process.returncode}:\n{_tail(log)}")
        try:
            response = httpx.get(url, headers=headers, timeout=2)
        except httpx.TransportError as error:
            last = repr(error)
        else:
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:300]}"
        time.sleep(0.1)
    raise BenchmarkError(f"server at {url} not ready after 60 s ({last}):\n{_tail(log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def kaanha_server(port: int) -> list[str]:
    return [str(BIN / "kaanha"), "serve", "--host", HOST, "--port", str(port), "--no-workers"]


def bare_server(port: int) -> list[str]:
    # The same uvicorn settings `kaanha serve` uses: uvloop, httptools, one process, no access log.
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "benchmarks.bare:app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def bare_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def load(spec: LoadSpec) -> dict[str, Any]:
    """Run the load generator in a process of its own and return its measurement."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.loadgen", "--spec", spec.to_json()],
        cwd=ROOT,
        env=bare_env(),
        capture_output=True,
        text=True,
        timeout=spec.warmup + spec.duration + 60,
    )
    if done.returncode != 0:
        raise BenchmarkError(f"GET {spec.path} on port {spec.port}: {done.stderr.strip() or done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result
