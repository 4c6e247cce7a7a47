"""People and their roles: users with argon2 password hashes, and memberships in organizations."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaanha.errors import Conflict, InvalidRequest, Unauthorized
from kaanha.kit.crypto import hash_password, verify_password
from kaanha.kit.ids import new_id
from kaanha.models import Membership, User

ROLES = ("owner", "admin", "agent")
MIN_PASSWORD_LENGTH = 10
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class DuplicateUser(Conflict):
    code = "duplicate_user"


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"


async def create_user(session: AsyncSession, *, email: str, name: str, password: str) -> User:
    """A person who can sign in; the password is kept only as an argon2 hash."""
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidRequest(f"'{email}' is not an email address")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(f"Passwords need at least {MIN_PASSWORD_LENGTH} characters")
    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        raise DuplicateUser(f"A user with email {email} already exists")
    user = User(id=new_id("usr"), email=email, name=name.strip() or email, password_hash=hash_password(password))
    session.add(user)
    await session.flush()
    return user


async def add_member(session: AsyncSession, *, organization_id: str, user_id: str, role: str) -> Membership:
    if role not in ROLES:
        raise InvalidRequest(f"Unknown role '{role}': choose one of {', '.join(ROLES)}")
    membership = Membership(id=new_id("mem"), organization_id=organization_id, user_id=user_id, role=role)
    session.add(membership)
    await session.flush()
    return membership


async def check_password(session: AsyncSession, *, email: str, password: str) -> User:
    """The user with these credentials; one message for a wrong email or password, so neither leaks."""
    user = await session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None or not verify_password(user.password_hash, password):
        raise InvalidCredentials("Wrong email or password")
    return user
