"""Settings: every knob comes from a KAANHA_* environment variable (nested groups use __)."""

from __future__ import annotations

import ipaddress
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MiB = 1024 * 1024


class RateLimitSettings(BaseModel):
    """Limits in the `limits` library's notation ("120/minute")."""

    api: str = "120/minute"
    per_recipient: str = "20/hour"
    enabled: bool = True


class SandboxSettings(BaseModel):
    """How fast the sandbox moves things along: a sent message's statuses, a new template's review."""

    delivered_after_seconds: float = 1.0
    read_after_seconds: float = 3.0
    # How long a new template waits "in review" before the sandbox's verdict (Meta takes minutes to hours).
    template_review_seconds: float = Field(default=5.0, ge=0)


class CloudApiSettings(BaseModel):
    """How we talk to Meta's Graph API: timeouts, pacing and what to do when an answer is lost."""

    # Meta's default throughput per number; a connection may set its own, up to the 1,000 of upgraded numbers.
    messages_per_second: int = Field(default=80, ge=1, le=1000)
    request_timeout_seconds: float = 20.0
    connect_timeout_seconds: float = 5.0
    # A send whose answer was lost (timeout, worker crash) waits this long for Meta's status webhook
    # to tell whether it arrived, before anything is decided (docs/decisions.md: in-doubt sends).
    unconfirmed_send_wait_seconds: float = 300.0
    # No webhook for this long while we keep sending means Meta's webhooks stopped reaching us.
    webhook_silence_seconds: float = 900.0
    send_attempts: int = 30

    @model_validator(mode="after")
    def _wait_outlasts_a_call(self) -> CloudApiSettings:
        # Deciding about a lost answer while the call could still be in flight would risk a duplicate.
        if self.unconfirmed_send_wait_seconds <= self.request_timeout_seconds + self.connect_timeout_seconds:
            raise ValueError("cloud_api.unconfirmed_send_wait_seconds must exceed the request and connect timeouts")
        return self


class WebhookSettings(BaseModel):
    """How outgoing webhooks are delivered: time per attempt, how many at once, when to give up on an endpoint."""

    # A 2xx within this long counts; DNS, connecting, redirects and reading the answer all fit inside it.
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Attempts running at once in one process (each waits on a customer's server, not on us).
    concurrency: int = Field(default=64, ge=1, le=1000)
    # Attempts in flight to one endpoint across every process, so a slow endpoint can't take every slot.
    per_endpoint_concurrency: int = Field(default=4, ge=1, le=100)
    # An endpoint that has failed (with no success) for this long is disabled and its organization told.
    disable_after_days: float = Field(default=3.0, gt=0)
    # How often other processes' new deliveries are looked for; in-process commits wake the dispatcher at once.
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    # A claimed delivery is the dispatcher's for this long; a crashed dispatcher's are taken over after it.
    lease_seconds: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> WebhookSettings:
        # A lease that ran out mid-attempt would let a second dispatcher send the same delivery at once.
        if self.lease_seconds <= self.timeout_seconds * 2:
            raise ValueError("webhooks.lease_seconds must exceed twice webhooks.timeout_seconds")
        return self


class PaymentGatewaySettings(BaseModel):
    """Where the payment gateways' APIs are (tests point them at the fakes on loopback) and how long calls may take."""

    razorpay_api_url: str = "https://api.razorpay.com"
    stripe_api_url: str = "https://api.stripe.com"
    request_timeout_seconds: float = Field(default=15.0, gt=0, le=120)
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Stripe's own libraries refuse a signed webhook whose timestamp is further than this from now (replays).
    stripe_webhook_tolerance_seconds: int = Field(default=300, ge=1)


class AiAgentSettings(BaseModel):
    """How AI agents rank knowledge and call model providers."""

    # Semantic ranking (the `semantic` extra) where installed; off keeps the model out of memory.
    semantic_ranking: bool = True
    # One model call may take this long in all (connecting, waiting, reading), then it counts as failed.
    request_timeout_seconds: float = Field(default=15.0, gt=0, le=120)
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # A provider's Retry-After is honoured up to this before the single retry; longer, and we hand over.
    max_retry_wait_seconds: float = Field(default=5.0, ge=0, le=30)
    anthropic_api_url: str = "https://api.anthropic.com"
    openai_api_url: str = "https://api.openai.com/v1"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAANHA_", env_nested_delimiter="__", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("./data")
    database_url: str | None = None
    redis_url: str | None = None
    secret_key: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    graph_api_url: str = "https://graph.facebook.com"
    graph_api_version: str = "v24.0"
    allow_private_urls: bool = False
    # NoDecode: the variable is a plain list ("10.0.0.0/8 192.168.1.2"), not JSON.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_upload_bytes: int = 16 * MiB
    max_json_body_bytes: int = 1 * MiB
    default_region: str = "IN"
    run_workers: bool = True
    # How long a claimed job stays a worker's: a crashed worker's jobs are taken over after this.
    job_lease_seconds: float = Field(default=60.0, gt=0)
    # Jobs a worker runs at once (they mostly wait on Meta); each holds a database connection.
    worker_concurrency: int = Field(default=20, ge=1, le=200)
    log_level: str = "INFO"
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    cloud_api: CloudApiSettings = Field(default_factory=CloudApiSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    ai_agents: AiAgentSettings = Field(default_factory=AiAgentSettings)
    payments: PaymentGatewaySettings = Field(default_factory=PaymentGatewaySettings)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        proxies = value.replace(",", " ").split() if isinstance(value, str) else value
        if isinstance(proxies, list):
            for proxy in proxies:
                ipaddress.ip_network(str(proxy), strict=False)  # a bad entry stops start-up, not requests
        return proxies

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'kaanha.db').resolve()}"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @cached_property
    def trusted_proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(proxy, strict=False) for proxy in self.trusted_proxies]

    def resolved_secret_key(self) -> str:
        """The key that encrypts secrets at rest.

        Outside production a missing key is generated once into the data dir, so `make run` needs
        no set-up; production must set KAANHA_SECRET_KEY explicitly, because losing the key means
        losing every stored provider token.
        """
        if self.secret_key:
            return self.secret_key
        if self.environment == "production":
            raise RuntimeError("KAANHA_SECRET_KEY must be set in production")
        key_file = self.data_dir / "secret.key"
        if not key_file.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            key_file.write_text(secrets.token_urlsafe(32))
            key_file.chmod(0o600)
        return key_file.read_text().strip()
