"""Child processes: `kaanha serve`, `kaanha worker`, `kaanha fake-meta`, the bare app, the webhook receiver,
the CLI, the load generator."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from benchmarks.loadgen import LoadSpec
from kaanha.testing.databases import scratch_postgres_database

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


class BenchmarkError(Exception):
    """Something the benchmark needs failed; the message says what."""


# Set by `--keep DIR`: each run's data dir, database and process logs stay in a folder of DIR.
KEEP: Path | None = None


@contextmanager
def workspace() -> Iterator[Path]:
    """A fresh folder for one run: temporary, or kept under KEEP (for reading the logs afterwards)."""
    if KEEP is None:
        with tempfile.TemporaryDirectory(prefix="kaanha-bench-") as temporary:
            yield Path(temporary)
        return
    KEEP.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="run-", dir=KEEP))
    log(f"keeping {folder}")
    yield folder


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def scratch_database(backend: str, folder: Path, admin_url: str | None) -> Iterator[str]:
    """The database URL for one run: a SQLite file in `folder`, or a fresh PostgreSQL database."""
    if admin_url is None:
        yield f"sqlite+aiosqlite:///{folder / 'kaanha.db'}"
        return
    with scratch_postgres_database(admin_url, prefix="kaanha_bench") as url:
        log(f"[{backend}] created database {make_url(url).database}")
        yield url
    log(f"[{backend}] dropped it")


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
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `command`, wait until `ready_url` answers 200, and stop it with SIGTERM afterwards."""
    with started(command, env=env, log=log) as process:
        _wait_ready(process, ready_url, headers, log)
        yield process


@contextmanager
def started(command: list[str], *, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start `command` (output to `log`) and stop it with SIGTERM afterwards; no readiness check.

    When a BenchmarkError passes through, the end of the log is printed first.
    """
    log_file = log
    with log_file.open("wb") as output:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield process
    except BenchmarkError:
        name = " ".join([Path(command[0]).name, *command[1:2]])
        print(f"{name}: the end of its log:\n{_tail(log_file, 60)}", file=sys.stderr, flush=True)
        raise
    finally:
        _stop(process)


def check_alive(process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    """Raise BenchmarkError with the end of its log if `process` has exited."""
    if process.poll() is not None:
        raise BenchmarkError(f"{what} exited with {process.returncode}:\n{_tail(log)}")


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


def cpu_seconds(process: subprocess.Popen[bytes]) -> float:
    """CPU time (user + system, all threads) a running child has used so far; 0.0 where /proc is missing."""
    try:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU time of the children waited for so far (the load generator, the CLI), user + system."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def kaanha_server(port: int, *, workers: bool = False) -> list[str]:
    """`kaanha serve`; `workers=True` is the server as shipped, with its background worker in-process."""
    return [
        str(BIN / "kaanha"),
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers" if workers else "--no-workers",
    ]


def kaanha_worker() -> list[str]:
    return [str(BIN / "kaanha"), "worker"]


def fake_meta(port: int, *, callback_url: str, throughput: int, webhook_batch: int = 1, **options: str) -> list[str]:
    """`kaanha fake-meta` on loopback, without the 24-hour window, its webhooks to `callback_url`.

    With `webhook_batch` > 1 it runs through benchmarks/fake_meta.py, which adds only that option.
    """
    command = [str(BIN / "kaanha")]
    if webhook_batch > 1:
        command = [sys.executable, "-m", "benchmarks.fake_meta", "--webhook-batch-size", str(webhook_batch)]
    return [
        *command,
        "fake-meta",
        "--port",
        str(port),
        "--callback-url",
        callback_url,
        "--throughput",
        str(throughput),
        "--no-window",
        *(f"--{name.replace('_', '-')}={value}" for name, value in options.items()),
    ]


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


def webhook_receiver(port: int, *, hang_seconds: float) -> list[str]:
    """benchmarks/receiver.py: answers POSTs 200 at once, or after `hang_seconds` on /hang; GET /stats."""
    return [sys.executable, "-m", "benchmarks.receiver", "--port", str(port), "--hang-seconds", f"{hang_seconds:g}"]


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
        problem = done.stderr.strip() or done.returncode
        raise BenchmarkError(f"{spec.method} {spec.path} on port {spec.port}: {problem}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result
