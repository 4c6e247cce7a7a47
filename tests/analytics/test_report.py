"""GET /analytics and its CSV export, checked against figures worked out by hand from tests/analytics/seed.py.

The organization is in Asia/Kolkata (+05:30); another organization holds exactly the same rows, and
none of them may ever show up in ours.
"""

from __future__ import annotations

import pytest

from tests.analytics.seed import People, Seeder, seed_kolkata_month, set_timezone, utc
from tests.conftest import API, make_tenant
from tests.helpers import assert_error

NOVEMBER_FIRST_WEEK = "from=2026-11-01&to=2026-11-07"
ZERO = {
    "sent": 0,
    "delivered": 0,
    "read": 0,
    "failed": 0,
    "received": 0,
    "conversationsOpened": 0,
    "conversationsResolved": 0,
}


def day(period: str, **counts: int) -> dict[str, object]:
    return {"periodStart": period, **ZERO, **counts}


@pytest.fixture
async def people(runtime, tenant, other_tenant, frozen_clock) -> People:
    await set_timezone(runtime.database, tenant.organization_id, "Asia/Kolkata")
    await set_timezone(runtime.database, other_tenant.organization_id, "Asia/Kolkata")
    await seed_kolkata_month(runtime.database, other_tenant.organization_id)
    return await seed_kolkata_month(runtime.database, tenant.organization_id)


async def test_a_week_by_day_counts_each_figure_as_defined(client, tenant, people):
    r = await client.get(f"{API}/analytics?{NOVEMBER_FIRST_WEEK}", headers=tenant.headers)

    assert r.status_code == 200, r.text
    body = r.json()
    # Instants in UTC, as every timestamp of the API: Nov 1 00:00 to Nov 8 00:00 in Kolkata.
    assert body["from"] == "2026-10-31T18:30:00Z"
    assert body["to"] == "2026-11-07T18:30:00Z"
    assert body["granularity"] == "day"
    assert body["timezone"] == "Asia/Kolkata"
    # Sent: messages 1-4, 14-16 and three of the broadcast's; delivered 1, 2, 14, 15 and two of the
    # broadcast's; read 1, 14 and one; failed 4-8 and one; received 9 and 11 (10 and 12 are outside).
    assert body["messages"] == {
        "sent": 10,
        "delivered": 6,
        "read": 3,
        "failed": 6,
        "received": 2,
        "deliveryRate": 0.6,
        "readRate": 0.5,
    }
    failures = [(failure["code"], failure["count"]) for failure in body["failuresByCode"]]
    assert failures == [(131047, 2), (131026, 1), (131049, 1), (999999, 1), (None, 1)]
    reasons = {failure["code"]: failure["reason"] for failure in body["failuresByCode"]}
    assert reasons[131047].startswith("More than 24 hours have passed since the customer last wrote")
    assert reasons[131026].startswith("The message could not be delivered")
    assert reasons[999999] == "Something odd"  # a code we don't know: Meta's own words
    assert "without an error code" in reasons[None]
    # Opened: O1, O2, O3 (Nov 4 local), O4 by the customer, O6 by us; assigned in the range: O1, O2, O3;
    # resolved: O1, O2, O3, O5.
    assert body["conversations"] == {
        "opened": 5,
        "openedByCustomer": 4,
        "openedByBusiness": 1,
        "assigned": 3,
        "resolved": 4,
    }
    # First responses given in the range: 30, 120, 600, 3600, 43200 s -> median the 3rd, p90 the 5th.
    assert body["firstResponseSeconds"] == {"median": 600.0, "p90": 43200.0}
    # Resolutions in the range: 7200, 21600, 86400, 172800 s -> median the 2nd, p90 the 4th.
    assert body["resolutionSeconds"] == {"median": 21600.0, "p90": 172800.0}
    assert body["series"] == [
        day("2026-11-01", sent=2, delivered=2, read=1, received=1, conversationsOpened=1, conversationsResolved=1),
        day("2026-11-02", sent=2, failed=2, conversationsOpened=1, conversationsResolved=1),
        day("2026-11-03", sent=5, delivered=4, read=2, failed=1, conversationsResolved=1),
        day("2026-11-04", failed=3, conversationsOpened=1, conversationsResolved=1),
        day("2026-11-05", conversationsOpened=1),
        day("2026-11-06", sent=1, conversationsOpened=1),
        day("2026-11-07", received=1),
    ]


async def test_agents_have_their_own_counts_and_median_first_response(client, tenant, people):
    r = await client.get(f"{API}/analytics?{NOVEMBER_FIRST_WEEK}", headers=tenant.headers)

    agents = {agent["name"]: agent for agent in r.json()["agents"]}
    assert agents == {
        "Asha Agent": {
            "userId": people.asha,
            "name": "Asha Agent",
            "role": "agent",
            "conversationsAssigned": 2,  # O1, O2
            "conversationsResolved": 2,  # O1, O2
            "messagesSent": 2,  # 14, 15
            "firstResponseMedianSeconds": 120.0,  # 120, 600
        },
        "Bilal Agent": {
            "userId": people.bilal,
            "name": "Bilal Agent",
            "role": "agent",
            "conversationsAssigned": 1,  # O3 (O5 was assigned before the range)
            "conversationsResolved": 2,  # O3, O5
            "messagesSent": 1,  # 16
            "firstResponseMedianSeconds": 30.0,  # 30, 43200
        },
        "Chitra Owner": {
            "userId": people.chitra,
            "name": "Chitra Owner",
            "role": "owner",
            "conversationsAssigned": 0,
            "conversationsResolved": 0,
            "messagesSent": 0,
            "firstResponseMedianSeconds": None,
        },
    }


async def test_broadcasts_started_in_the_range_show_their_funnel(client, tenant, people):
    r = await client.get(f"{API}/analytics?{NOVEMBER_FIRST_WEEK}", headers=tenant.headers)

    (broadcast,) = r.json()["broadcasts"]  # October's is outside the range, the other organization's not ours
    assert {key: value for key, value in broadcast.items() if key != "id"} == {
        "name": "Diwali offers",
        "templateName": "hello_world",
        "status": "completed",
        "startedAt": "2026-11-03T12:00:00Z",
        "recipients": 5,
        "sent": 3,
        "delivered": 2,
        "read": 1,
        "failed": 1,
        "replied": 1,
    }
    # The same funnel as the broadcast's own page.
    counts = (await client.get(f"{API}/broadcasts/{broadcast['id']}", headers=tenant.headers)).json()["counts"]
    assert {key: counts[key] for key in ("sent", "delivered", "read", "failed", "replied")} == {
        "sent": 3,
        "delivered": 2,
        "read": 1,
        "failed": 1,
        "replied": 1,
    }


async def test_weeks_start_on_monday_and_empty_weeks_are_zeros(client, tenant, people):
    # Nov 1 2026 is a Sunday: the first week is Oct 26 - Nov 1 (only Nov 1 in range), then Nov 2 - 8
    # (now including message 12 and O7, on Nov 8), then Nov 9 - 14, empty.
    r = await client.get(f"{API}/analytics?from=2026-11-01&to=2026-11-14&granularity=week", headers=tenant.headers)

    assert r.status_code == 200, r.text
    assert r.json()["series"] == [
        day("2026-10-26", sent=2, delivered=2, read=1, received=1, conversationsOpened=1, conversationsResolved=1),
        day(
            "2026-11-02",
            sent=8,
            delivered=4,
            read=2,
            failed=6,
            received=2,
            conversationsOpened=5,
            conversationsResolved=3,
        ),
        day("2026-11-09"),
    ]


async def test_months(client, tenant, people):
    r = await client.get(f"{API}/analytics?from=2026-10-01&to=2026-11-30&granularity=month", headers=tenant.headers)

    body = r.json()
    assert body["from"] == "2026-09-30T18:30:00Z"
    assert body["to"] == "2026-11-30T18:30:00Z"
    assert body["series"] == [
        day("2026-10-01", received=1, conversationsOpened=1),  # message 10 and O5, Oct 31 local
        day(
            "2026-11-01",
            sent=10,
            delivered=6,
            read=3,
            failed=6,
            received=3,
            conversationsOpened=6,
            conversationsResolved=4,
        ),
    ]
    assert [broadcast["name"] for broadcast in body["broadcasts"]] == ["October", "Diwali offers"]
    assert body["conversations"] == {
        "opened": 7,
        "openedByCustomer": 6,
        "openedByBusiness": 1,
        "assigned": 4,
        "resolved": 4,
    }


async def test_by_default_the_last_30_days_today_included(client, tenant, people):
    # The frozen clock: 2026-11-24 10:00 UTC, 15:30 in Kolkata.
    r = await client.get(f"{API}/analytics", headers=tenant.headers)

    body = r.json()
    assert body["from"] == "2026-10-25T18:30:00Z"
    assert body["to"] == "2026-11-24T18:30:00Z"
    assert len(body["series"]) == 30
    assert body["series"][0]["periodStart"] == "2026-10-26"
    assert body["series"][-1]["periodStart"] == "2026-11-24"
    assert body["messages"]["received"] == 4  # 9, 10, 11, 12


async def test_datetimes_are_instants_with_to_excluded(client, tenant, people):
    r = await client.get(
        f"{API}/analytics",
        params={"from": "2026-11-01T08:30:00+05:30", "to": "2026-10-31T18:29:59Z"},
        headers=tenant.headers,
    )
    assert_error(r, 400, "invalid_range")

    r = await client.get(
        f"{API}/analytics",
        params={"from": "2026-11-01T08:30:00+05:30", "to": "2026-11-01T18:29:59Z"},
        headers=tenant.headers,
    )

    body = r.json()
    assert body["from"] == "2026-11-01T03:00:00Z"
    assert body["to"] == "2026-11-01T18:29:59Z"
    # Message 1 (08:30, from included) only; message 2 at 23:59:59 is where `to` stops, excluded.
    assert body["series"] == [
        day("2026-11-01", sent=1, delivered=1, read=1, conversationsOpened=1, conversationsResolved=1)
    ]


async def test_the_csv_export_is_the_series(client, tenant, people):
    r = await client.get(f"{API}/analytics/export?{NOVEMBER_FIRST_WEEK}&format=csv", headers=tenant.headers)

    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        r.headers["content-disposition"] == 'attachment; filename="kaanha-analytics-2026-11-01-to-2026-11-07-day.csv"'
    )
    assert r.text.splitlines() == [
        "periodStart,sent,delivered,read,failed,received,conversationsOpened,conversationsResolved",
        "2026-11-01,2,2,1,0,1,1,1",
        "2026-11-02,2,0,0,2,0,1,1",
        "2026-11-03,5,4,2,1,0,0,1",
        "2026-11-04,0,0,0,3,0,1,1",
        "2026-11-05,0,0,0,0,0,1,0",
        "2026-11-06,1,0,0,0,0,1,0",
        "2026-11-07,0,0,0,0,1,0,0",
    ]


async def test_another_organization_sees_only_its_own(client, runtime, tenant, people):
    # A third organization with nothing of its own sees nothing, though the other two are full.
    empty = await make_tenant(runtime, "Initech")

    r = await client.get(f"{API}/analytics?from=2026-10-01&to=2026-11-30&granularity=month", headers=empty.headers)

    body = r.json()
    assert body["timezone"] == "UTC"
    assert body["messages"] == {
        "sent": 0,
        "delivered": 0,
        "read": 0,
        "failed": 0,
        "received": 0,
        "deliveryRate": None,
        "readRate": None,
    }
    assert body["failuresByCode"] == []
    assert body["conversations"] == {
        "opened": 0,
        "openedByCustomer": 0,
        "openedByBusiness": 0,
        "assigned": 0,
        "resolved": 0,
    }
    assert body["firstResponseSeconds"] == {"median": None, "p90": None}
    assert body["resolutionSeconds"] == {"median": None, "p90": None}
    assert body["agents"] == []
    assert body["broadcasts"] == []
    assert body["series"] == [day("2026-10-01"), day("2026-11-01")]


async def test_new_york_days_follow_the_november_dst_change(client, runtime, tenant, frozen_clock):
    # Clocks go back at 06:00 UTC on Nov 1 2026 (02:00 EDT -> 01:00 EST): Nov 1 is 25 hours long.
    await set_timezone(runtime.database, tenant.organization_id, "America/New_York")
    async with runtime.database.transaction() as session:
        seed = Seeder(session, tenant.organization_id)
        thread = await seed.thread()
        for at in (
            utc(2026, 11, 1, 3, 59, 59),  # Oct 31 23:59:59 EDT
            utc(2026, 11, 1, 4, 0),  # Nov 1 00:00 EDT
            utc(2026, 11, 2, 4, 30),  # Nov 1 23:30 EST (00:30 on Nov 2 at the summer offset)
            utc(2026, 11, 2, 5, 0),  # Nov 2 00:00 EST
        ):
            seed.message(thread, at, direction="inbound", status="received")

    r = await client.get(f"{API}/analytics?from=2026-10-31&to=2026-11-02", headers=tenant.headers)

    body = r.json()
    assert body["from"] == "2026-10-31T04:00:00Z"  # midnight EDT
    assert body["to"] == "2026-11-03T05:00:00Z"  # midnight EST
    assert [(point["periodStart"], point["received"]) for point in body["series"]] == [
        ("2026-10-31", 1),
        ("2026-11-01", 2),
        ("2026-11-02", 1),
    ]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("granularity=hour", "invalid_granularity"),
        ("from=2026-11-10&to=2026-11-01", "invalid_range"),
        ("from=2026-11-01&to=2026-11-01T00:00:00Z", "invalid_range"),
        ("from=yesterday", "invalid_range"),
        ("from=2026-02-30", "invalid_range"),
        ("from=2026-11-01T09:00:00", "invalid_range"),  # no offset
        ("from=2025-11-01&to=2026-11-24", "range_too_long"),  # 389 days by day
        ("from=2023-11-01&to=2026-11-24&granularity=month", "range_too_long"),
        # Out of the years 2000 to 2100: never a date overflow (a 500), always a 400 saying so.
        ("to=9999-12-31", "invalid_range"),
        ("to=9999-12-31T23:59:59-12:00", "invalid_range"),
        ("from=9999-01-01&to=9999-12-30&granularity=month", "invalid_range"),
        ("from=0001-01-01&to=0001-01-05", "invalid_range"),
        ("from=0001-01-01T00:00:00%2B14:00&to=0001-01-05T00:00:00Z", "invalid_range"),
        ("from=1999-12-31&to=2000-01-05", "invalid_range"),
        ("from=2100-12-01&to=2101-01-01", "invalid_range"),
    ],
)
async def test_bad_parameters_are_400(client, runtime, tenant, frozen_clock, query, code):
    out_of_years = any(year in query for year in ("1999", "2101", "9999", "0001"))
    if out_of_years:
        # A zone east of UTC, so that year 1's first local midnight is in year 0 (no such year in Python).
        await set_timezone(runtime.database, tenant.organization_id, "Asia/Kolkata")
    r = await client.get(f"{API}/analytics?{query}", headers=tenant.headers)
    assert_error(r, 400, code)
    if out_of_years:
        assert "2000 to 2100" in r.json()["error"]

    r = await client.get(f"{API}/analytics/export?{query}", headers=tenant.headers)
    assert_error(r, 400, code)


async def test_a_year_by_week_is_fine(client, tenant, frozen_clock):
    r = await client.get(f"{API}/analytics?from=2025-11-01&to=2026-11-24&granularity=week", headers=tenant.headers)

    assert r.status_code == 200, r.text
    assert len(r.json()["series"]) == 57  # Mon Oct 27 2025 ... Mon Nov 23 2026: 392 days apart, 56 weeks


async def test_only_csv_exports_and_the_scope_is_needed(client, runtime, tenant, frozen_clock):
    assert_error(
        await client.get(f"{API}/analytics/export?format=xlsx", headers=tenant.headers), 400, "unsupported_format"
    )

    reader = await make_tenant(runtime, "Scoped", scopes=["messages:read"])
    assert_error(await client.get(f"{API}/analytics", headers=reader.headers), 403, "insufficient_scope")
    assert_error(await client.get(f"{API}/analytics/export", headers=reader.headers), 403, "insufficient_scope")


async def test_openings_from_the_migration_count_but_stay_out_of_response_and_resolution_times(
    client, runtime, tenant, frozen_clock
):
    # Migration 0007's rows start when their conversation was created (maybe months ago, and before
    # any reopening): they are opened and resolved on their dates, but their durations mean nothing.
    async with runtime.database.transaction() as session:
        seed = Seeder(session, tenant.organization_id)
        await seed.opening(  # backfilled: open since August, answered then, resolved in the range
            utc(2026, 8, 1, 10, 0),
            first_inbound_at=utc(2026, 8, 1, 10, 0),
            first_response_at=utc(2026, 11, 10, 10, 0),
            resolved_at=utc(2026, 11, 10, 12, 0),
            backfilled=True,
        )
        await seed.opening(  # backfilled and opened in the range: counted as opened
            utc(2026, 11, 9, 10, 0), first_inbound_at=utc(2026, 11, 9, 10, 0), backfilled=True
        )
        await seed.opening(  # a real one: answered in 60 s, resolved after an hour
            utc(2026, 11, 11, 10, 0),
            first_inbound_at=utc(2026, 11, 11, 10, 0),
            first_response_at=utc(2026, 11, 11, 10, 1),
            resolved_at=utc(2026, 11, 11, 11, 0),
        )

    r = await client.get(f"{API}/analytics?from=2026-11-01&to=2026-11-20", headers=tenant.headers)

    body = r.json()
    assert (body["conversations"]["opened"], body["conversations"]["resolved"]) == (2, 2)
    assert body["firstResponseSeconds"] == {"median": 60.0, "p90": 60.0}
    assert body["resolutionSeconds"] == {"median": 3600.0, "p90": 3600.0}


async def test_the_series_never_grows_periods_outside_the_range(client, runtime, tenant, frozen_clock):
    # 23:59:59.9996 on the range's last day: SQLite reads times to the millisecond, rounded, which is
    # midnight of the next day. The message is in the range, so it is counted on its last day.
    await set_timezone(runtime.database, tenant.organization_id, "Asia/Kolkata")
    async with runtime.database.transaction() as session:
        seed = Seeder(session, tenant.organization_id)
        thread = await seed.thread()
        seed.message(thread, utc(2026, 11, 7, 18, 29, 59, 999_600), direction="inbound", status="received")
        seed.message(thread, utc(2026, 10, 31, 18, 30), direction="inbound", status="received")  # Nov 1 00:00

    for path in (f"analytics?{NOVEMBER_FIRST_WEEK}", f"analytics?{NOVEMBER_FIRST_WEEK}&granularity=week"):
        r = await client.get(f"{API}/{path}", headers=tenant.headers)
        body = r.json()
        assert body["messages"]["received"] == 2
        periods = [(point["periodStart"], point["received"]) for point in body["series"]]
        if "week" in path:
            assert periods == [("2026-10-26", 1), ("2026-11-02", 1)]
        else:
            assert periods == [("2026-11-01", 1), *((f"2026-11-0{n}", 0) for n in range(2, 7)), ("2026-11-07", 1)]
