"""`kaanha serve | worker | mcp | db | orgs | keys | sandbox | demo`: the same services as the API, from a shell."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError

from kaanha.auth import api_keys
from kaanha.config import Settings
from kaanha.errors import KaanhaError
from kaanha.migrations import upgrade_database
from kaanha.organizations import service as organizations
from kaanha.organizations.repository import find_organization
from kaanha.runtime import Runtime

app = typer.Typer(help="Kaanha: a WhatsApp Business platform.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
orgs_app = typer.Typer(help="Organizations.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
sandbox_app = typer.Typer(help="The sandbox WhatsApp connection.", no_args_is_help=True)
connect_app = typer.Typer(help="Connect an organization to WhatsApp.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(orgs_app, name="orgs")
app.add_typer(keys_app, name="keys")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(connect_app, name="connect")

T = TypeVar("T")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object")]
OrgOption = Annotated[str, typer.Option("--org", help="Organization id or exact name")]


def _run(work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run `work` with a runtime on a migrated database; print KaanhaErrors as clean messages."""
    settings = Settings()
    upgrade_database(settings.resolved_database_url)

    async def main() -> T:
        runtime = Runtime.from_settings(settings)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    try:
        return asyncio.run(main())
    except KaanhaError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(code=1) from None


def _exit_invalid(error: ValidationError) -> NoReturn:
    # "scopes: unknown scopes: bogus", not pydantic's report with its links and input dumps.
    reasons = "; ".join(
        f"{'.'.join(map(str, problem['loc'])) or 'input'}: {str(problem['msg']).removeprefix('Value error, ')}"
        for problem in error.errors()
    )
    typer.echo(f"error: {reasons}", err=True)
    raise typer.Exit(code=2)


def _emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    typer.echo(json.dumps(data) if as_json else text)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema."""
    settings = Settings()
    upgrade_database(settings.resolved_database_url)
    typer.echo("database is up to date")


@orgs_app.command("create")
def orgs_create(
    name: str,
    plan: Annotated[str, typer.Option(help="starter or pro")] = "starter",
    region: Annotated[str, typer.Option(help="Default phone region (ISO country)")] = "IN",
    as_json: JsonFlag = False,
) -> None:
    """Create an organization on the sandbox connection."""

    async def work(runtime: Runtime) -> dict[str, str]:
        async with runtime.database.transaction() as session:
            org = await organizations.create_organization(session, name=name, plan=plan, default_region=region)
            return {"id": org.id, "name": org.name, "plan": org.plan}

    created = _run(work)
    _emit(as_json, created, f"created organization {created['name']} ({created['id']}), plan {created['plan']}")


def _parse_date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        typer.echo(f"error: '{value}' is not a date (use 2027-01-31 or an ISO 8601 time)", err=True)
        raise typer.Exit(code=2) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@keys_app.command("create")
def keys_create(
    org: OrgOption,
    name: Annotated[str, typer.Option("--name", help="What the key is for")],
    expires_at: Annotated[str | None, typer.Option("--expires-at", help="ISO date or time")] = None,
    scopes: Annotated[str | None, typer.Option("--scopes", help="Space-separated; default all")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key; its secret is printed once."""
    expiry = _parse_date(expires_at)
    from kaanha.auth.schemas import ApiKeyCreate

    try:
        request = ApiKeyCreate(name=name, expires_at=expiry, scopes=scopes.split() if scopes else None)
    except ValidationError as error:
        _exit_invalid(error)

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.transaction() as session:
            organization = await find_organization(session, org)
            if organization is None:
                raise KaanhaError(f"no organization '{org}'")
            created = await api_keys.create_api_key(
                session,
                organization_id=organization.id,
                name=request.name,
                scopes=request.scopes,
                expires_at=request.expires_at,
            )
            record = created.record
            return {
                "id": record.id,
                "name": record.name,
                "key": created.secret,
                "scopes": record.scopes,
                "expiresAt": record.expires_at.isoformat().replace("+00:00", "Z") if record.expires_at else None,
            }

    created = _run(work)
    _emit(
        as_json,
        created,
        f"API key {created['name']} ({created['id']}):\n  {created['key']}\nIt won't be shown again.",
    )


@sandbox_app.command("receive")
def sandbox_receive(
    org: OrgOption,
    sender: Annotated[str, typer.Option("--from", help="The customer's phone")],
    text: Annotated[str, typer.Option("--text", help="What the customer writes")],
    name: Annotated[str | None, typer.Option("--name", help="The customer's profile name")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Simulate a customer writing to the sandbox number."""
    from kaanha.kit.schemas import dump
    from kaanha.whatsapp.sandbox.schemas import SandboxInbound
    from kaanha.whatsapp.sandbox.service import receive

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.transaction() as session:
            organization = await find_organization(session, org)
            if organization is None:
                raise KaanhaError(f"no organization '{org}'")
            data = SandboxInbound.model_validate({"from": sender, "text": text, "name": name, "type": "text"})
            return dump(await receive(session, organization_id=organization.id, data=data))

    message = _run(work)
    _emit(as_json, message, f"received message {message['id']} in conversation {message['conversationId']}")


def _connect(org: str, update: dict[str, Any], as_json: bool) -> None:
    from kaanha.kit.schemas import dump
    from kaanha.organizations.connection import update_connection
    from kaanha.organizations.schemas import ConnectionUpdate

    try:
        request = ConnectionUpdate.model_validate(update)
    except ValidationError as error:
        _exit_invalid(error)

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.transaction() as session:
            organization = await find_organization(session, org)
            if organization is None:
                raise KaanhaError(f"no organization '{org}'")
            return dump(await update_connection(session, runtime, organization_id=organization.id, update=request))

    connection = _run(work)
    _emit(
        as_json,
        connection,
        f"connected to {connection['type']}: {connection['phoneNumber']} ({connection['businessName']})\n"
        f"  Meta webhook URL: {connection['webhookUrl']}",
    )


@connect_app.command("cloud-api")
def connect_cloud_api(
    org: OrgOption,
    phone_number_id: Annotated[str, typer.Option("--phone-number-id", help="From Meta's WhatsApp API setup")],
    waba_id: Annotated[str, typer.Option("--waba-id", help="WhatsApp Business Account id")],
    access_token: Annotated[
        str, typer.Option("--access-token", envvar="KAANHA_META_ACCESS_TOKEN", help="A system user token")
    ],
    app_secret: Annotated[
        str, typer.Option("--app-secret", envvar="KAANHA_META_APP_SECRET", help="The Meta app's secret")
    ],
    verify_token: Annotated[str, typer.Option("--verify-token", help="Your webhook verify token")],
    messages_per_second: Annotated[int | None, typer.Option("--messages-per-second", help="1-1000; default 80")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Connect Meta's WhatsApp Cloud API (the credentials are checked with Meta first)."""
    _connect(
        org,
        {
            "type": "cloud_api",
            "phoneNumberId": phone_number_id,
            "wabaId": waba_id,
            "accessToken": access_token,
            "appSecret": app_secret,
            "verifyToken": verify_token,
            "messagesPerSecond": messages_per_second,
        },
        as_json,
    )


@connect_app.command("sandbox")
def connect_sandbox(org: OrgOption, as_json: JsonFlag = False) -> None:
    """Go back to the sandbox connection (Meta's credentials are forgotten)."""
    _connect(org, {"type": "sandbox"}, as_json)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[bool, typer.Option("--workers/--no-workers", help="Run background workers here")] = True,
) -> None:
    """Serve the API (with background workers in the same process)."""
    import socket

    import uvicorn

    from kaanha.app import create_app
    from kaanha.events.stream import end_event_streams

    settings = Settings()
    settings.run_workers = workers
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    upgrade_database(settings.resolved_database_url)
    application = create_app(settings)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # uvicorn waits for open responses before it stops, and live event streams never end alone.
            end_event_streams(application)
            await super().shutdown(sockets)

    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level.lower(),
        access_log=False,
    )
    server = Server(config)
    server.run()
    if not server.started:
        raise typer.Exit(3)  # uvicorn.run's exit status when start-up fails


@app.command("fake-meta")
def fake_meta(
    port: Annotated[int, typer.Option(help="Port to listen on (127.0.0.1)")] = 8900,
    callback_url: Annotated[
        str | None, typer.Option("--callback-url", help="Where to post webhooks (loopback only)")
    ] = "http://127.0.0.1:8000/api/webhooks/whatsapp",
    access_token: Annotated[str, typer.Option("--access-token", help="The token clients must send")] = "fake-token",  # noqa: S107 (a demo fake's)
    app_secret: Annotated[str, typer.Option("--app-secret", help="Signs the webhooks")] = "fake-app-secret",  # noqa: S107
    phone_number_id: Annotated[str, typer.Option("--phone-number-id")] = "100000000000101",
    waba_id: Annotated[str, typer.Option("--waba-id")] = "100000000000001",
    throughput: Annotated[int, typer.Option(help="Messages per second before 130429")] = 80,
    error_rate: Annotated[float, typer.Option(help="Share of sends answered with a 5xx")] = 0.0,
    timeout_rate: Annotated[float, typer.Option(help="Share of sends accepted but answered too late")] = 0.0,
    slow_rate: Annotated[float, typer.Option(help="Share of sends answered slowly")] = 0.0,
    failed_status_rate: Annotated[float, typer.Option(help="Share of sends that end in a failed status")] = 0.0,
    window: Annotated[bool, typer.Option("--window/--no-window", help="Enforce the 24-hour window")] = True,
) -> None:
    """Run a fake of Meta's Graph API on 127.0.0.1, for demos without a Meta account."""
    import uvicorn

    from kaanha.testing.fake_graph import FakeGraphAPI

    try:
        fake = FakeGraphAPI.from_options(
            access_token=access_token,
            app_secret=app_secret,
            callback_url=callback_url,
            phone_number_id=phone_number_id,
            waba_id=waba_id,
            throughput_per_second=throughput,
            error_rate=error_rate,
            timeout_rate=timeout_rate,
            slow_rate=slow_rate,
            failed_status_rate=failed_status_rate,
            enforce_window=window,
        )
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(
        f"""Fake Graph API on http://127.0.0.1:{port} (webhooks to {callback_url})
Point Kaanha at it and connect an organization:
  export KAANHA_GRAPH_API_URL=http://127.0.0.1:{port}
  kaanha connect cloud-api --org ORG --phone-number-id {phone_number_id} --waba-id {waba_id} \\
      --access-token {access_token} --app-secret {app_secret} --verify-token any-verify-token
A customer writes:  curl -X POST http://127.0.0.1:{port}/_fake/customers/919876543210/messages \\
      -H 'Content-Type: application/json' -d '{{"phone_number_id": "{phone_number_id}", "text": "Hi"}}'
"""
    )
    uvicorn.run(fake.app, host="127.0.0.1", port=port, log_level="warning")


@app.command()
def mcp() -> None:
    """Serve MCP over stdio for an AI assistant; KAANHA_API_KEY selects the organization."""
    import os
    import sys

    from kaanha.auth.api_keys import authenticate
    from kaanha.mcp_server.tools import build_server

    settings = Settings()
    # stdout carries the protocol: logs go to stderr.
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    api_key = os.environ.get("KAANHA_API_KEY", "").strip()
    if not api_key:
        typer.echo("error: set KAANHA_API_KEY to an API key (kaanha keys create --org ORG --name NAME)", err=True)
        raise typer.Exit(code=2)

    async def work(runtime: Runtime) -> None:
        async with runtime.database.sessions() as session:
            await authenticate(session, f"Bearer {api_key}")
            await session.commit()
        await build_server(runtime, api_key=api_key).run_stdio_async()

    _run(work)


@app.command()
def worker() -> None:
    """Run background workers only (scale them out beside `kaanha serve --no-workers`)."""
    from kaanha.webhooks.dispatcher import WebhookDispatcher
    from kaanha.worker.runner import Worker

    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def work(runtime: Runtime) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await asyncio.gather(Worker(runtime).run_forever(stop), WebhookDispatcher(runtime).run_forever(stop))

    _run(work)


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Address the server will listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the server will listen on")] = 8000,
) -> None:
    """Make sure a demo organization and API key exist, and print how to try them (used by `make run`)."""
    settings = Settings()
    key_file = settings.data_dir / "demo-api-key"

    async def work(runtime: Runtime) -> tuple[str, str]:
        async with runtime.database.transaction() as session:
            organization = await find_organization(session, "Demo Company")
            if organization is None:
                organization = await organizations.create_organization(session, name="Demo Company", plan="pro")
            saved = _read_demo_key(key_file)
            if saved is not None:
                try:
                    await api_keys.authenticate(session, f"Bearer {saved}")
                    return organization.id, saved
                except KaanhaError:
                    pass
            created = await api_keys.create_api_key(session, organization_id=organization.id, name="demo (make run)")
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(created.secret)
            key_file.chmod(0o600)
            return organization.id, created.secret

    organization_id, key = _run(work)
    base = f"http://{host}:{port}"
    typer.echo(
        f"""
Kaanha is starting at {base}
  API docs:       {base}/api/whatsapp-api/docs
  Organization:   Demo Company ({organization_id}), on the sandbox WhatsApp connection
  API key:        {key}

Try it:
  curl -s {base}/api/whatsapp-api/status -H 'Authorization: Bearer {key}'
  curl -s -X POST {base}/api/whatsapp-api/sandbox/inbound -H 'Authorization: Bearer {key}' \\
       -H 'Content-Type: application/json' -d '{{"from": "+919876543210", "name": "Asha", "text": "Hi!"}}'
"""
    )


def _read_demo_key(path: Path) -> str | None:
    return path.read_text().strip() if path.exists() else None
