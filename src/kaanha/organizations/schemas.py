"""Public shapes of an organization's connection status."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from kaanha.kit.schemas import RequestSchema, Schema, Timestamp


class ConnectionStatus(Schema):
    connected: bool
    phone_number: str | None
    connection_type: Literal["cloud_api", "sandbox"]
    business_name: str | None
    reason: str | None = None


CREDENTIAL_CHARACTERS = r"^[\x21-\x7e]+$"


class ConnectionUpdate(RequestSchema):
    """PUT /connection: the sandbox, or Meta's Cloud API with the credentials from Meta's console."""

    type: Literal["sandbox", "cloud_api"]
    phone_number_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[0-9]+$")
    waba_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[0-9]+$")
    # Printable ASCII without spaces, as Meta's are: anything else can't go in a header anyway.
    access_token: str | None = Field(default=None, min_length=10, max_length=1000, pattern=CREDENTIAL_CHARACTERS)
    app_secret: str | None = Field(default=None, min_length=8, max_length=200, pattern=CREDENTIAL_CHARACTERS)
    verify_token: str | None = Field(default=None, min_length=8, max_length=200, pattern=CREDENTIAL_CHARACTERS)
    messages_per_second: int | None = Field(default=None, ge=1, le=1000)

    @model_validator(mode="after")
    def _cloud_api_needs_credentials(self) -> ConnectionUpdate:
        if self.type == "cloud_api":
            missing = [
                name
                for name, value in (
                    ("phoneNumberId", self.phone_number_id),
                    ("wabaId", self.waba_id),
                    ("accessToken", self.access_token),
                    ("appSecret", self.app_secret),
                    ("verifyToken", self.verify_token),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"a cloud_api connection needs {', '.join(missing)}")
        return self


class ConnectionOut(Schema):
    """The connection as people configure it; the access token and app secret are never returned."""

    type: Literal["cloud_api", "sandbox"]
    connected: bool
    reason: str | None
    phone_number: str | None
    business_name: str | None
    phone_number_id: str | None
    waba_id: str | None
    verify_token: str | None
    webhook_url: str
    messages_per_second: int
    has_access_token: bool
    has_app_secret: bool
    last_webhook_at: Timestamp | None
    updated_at: Timestamp
