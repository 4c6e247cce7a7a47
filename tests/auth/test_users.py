"""Users and memberships, ready for the dashboard: argon2 passwords and roles."""

from __future__ import annotations

import pytest

from kaanha.auth.users import DuplicateUser, InvalidCredentials, add_member, check_password, create_user
from kaanha.errors import InvalidRequest
from kaanha.models import User


async def test_password_is_stored_as_argon2_and_checked(runtime, tenant):
    async with runtime.database.transaction() as session:
        user = await create_user(session, email="Asha@Example.com", name="Asha", password="correct horse battery")
        await add_member(session, organization_id=tenant.organization_id, user_id=user.id, role="agent")
    async with runtime.database.transaction() as session:
        stored = await session.get(User, user.id)
        assert stored is not None
        assert stored.email == "asha@example.com"
        assert stored.password_hash.startswith("$argon2")
        assert "correct horse" not in stored.password_hash
        assert (await check_password(session, email="asha@example.com", password="correct horse battery")).id == user.id
        with pytest.raises(InvalidCredentials):
            await check_password(session, email="asha@example.com", password="wrong password!")
        with pytest.raises(InvalidCredentials):
            await check_password(session, email="nobody@example.com", password="correct horse battery")


async def test_bad_users_are_refused(runtime, tenant):
    async with runtime.database.transaction() as session:
        await create_user(session, email="a@example.com", name="A", password="long enough pw")
    async with runtime.database.transaction() as session:
        with pytest.raises(DuplicateUser):
            await create_user(session, email="A@example.com", name="A", password="long enough pw")
        with pytest.raises(InvalidRequest):
            await create_user(session, email="not-an-email", name="B", password="long enough pw")
        with pytest.raises(InvalidRequest):
            await create_user(session, email="b@example.com", name="B", password="short")
        user = await create_user(session, email="c@example.com", name="C", password="long enough pw")
        with pytest.raises(InvalidRequest):
            await add_member(session, organization_id=tenant.organization_id, user_id=user.id, role="king")
