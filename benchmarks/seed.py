"""Many realistic contacts in one organization, inserted in bulk through SQLAlchemy Core.

Names are Indian first and last names in varied combinations, phones unique E.164 Indian mobiles
(+91 and ten digits from 6-9), a third of contacts have an email, most have a few tags. Rows go in
with executemany in chunks, so the database's own triggers (SQLite's FTS5 `contacts_fts`) and indexes
(PostgreSQL's trigram GIN) are filled exactly as the API's inserts fill them.

`seed_queued_sends` writes what `POST /send` leaves behind for each of many customers whose 24-hour
window is open (they wrote an hour ago): the contact, its open conversation, the `queued` text message
and its `messages.send` job (see messages/service.py::_store_outbound and worker/queue.py::enqueue).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text

from kaanha.database import Database
from kaanha.kit.clock import now as clock_now
from kaanha.kit.ids import new_id
from kaanha.messages.service import SEND_JOB
from kaanha.models import Contact, ContactTag, Conversation, Job, Message


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    "Aarav Aditi Aditya Akash Amit Ananya Anil Anjali Arjun Aryan Asha Deepak Deepika Dev Divya Gaurav "
    "Geeta Harish Ishaan Isha Jaya Karan Kavita Kiran Krishna Kumar Lakshmi Madhu Mahesh Manish Meena "
    "Mohan Neha Nikhil Nisha Pooja Pradeep Pranav Priya Priyanka Rahul Rajesh Rakesh Ramesh Ravi Rekha "
    "Rohan Rohit Sachin Sanjay Sarita Shreya Shweta Siddharth Sneha Sunil Sunita Suresh Swati Tanvi Uma "
    "Varun Vidya Vijay Vikram Vinod Yash Zoya Farhan Imran Ayesha Sana Harpreet Gurpreet Simran Joseph "
    "Mary Thomas"
)
LAST_NAMES = _words(
    "Sharma Verma Gupta Singh Kumar Patel Shah Mehta Joshi Iyer Iyengar Nair Menon Pillai Reddy Rao "
    "Naidu Chowdhury Banerjee Chatterjee Mukherjee Das Bose Sen Ghosh Kulkarni Deshpande Patil Jadhav "
    "Pawar Kapoor Malhotra Khanna Chopra Agarwal Bansal Jain Mishra Tiwari Pandey Dubey Yadav Chauhan "
    "Rathore Thakur Khan Sheikh Qureshi Ansari D'Souza Fernandes Pereira Gill Sandhu Dhillon Bhat Hegde "
    "Shetty Kamath"
)
TAGS = ("customer", "lead", "vip", "wholesale", "newsletter", "mumbai", "delhi", "bengaluru", "repeat", "festive")
CITIES = ("Mumbai", "Delhi", "Bengaluru", "Chennai", "Kolkata", "Hyderabad", "Pune", "Ahmedabad", "Jaipur", "Lucknow")
DOMAINS = ("gmail.com", "yahoo.co.in", "outlook.com", "rediffmail.com", "example.in")
CHUNK = 5000


@dataclass
class SeededContacts:
    count: int
    tags: int
    names: list[str | None]
    phones: list[str]

    def matches(self, term: str) -> int:
        """How many contacts `GET /contacts?search=term` should find (name or phone contains it)."""
        lowered = term.lower()
        return sum(
            1
            for name, phone in zip(self.names, self.phones, strict=True)
            if (name is not None and lowered in name.lower()) or term in phone
        )


def _phones(rng: random.Random, count: int) -> list[str]:
    seen: set[str] = set()
    phones: list[str] = []
    while len(phones) < count:
        phone = f"+91{rng.randint(6, 9)}{rng.randrange(10**9):09d}"
        if phone not in seen:
            seen.add(phone)
            phones.append(phone)
    return phones


def _rows(organization_id: str, count: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(seed)
    phones = _phones(rng, count)
    span = timedelta(days=730)
    start = clock_now() - span
    contacts: list[dict[str, Any]] = []
    tags: list[dict[str, Any]] = []
    for index, phone in enumerate(phones):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        roll = rng.random()
        name: str | None
        if roll < 0.03:
            name = None  # a customer who never shared a profile name
        elif roll < 0.15:
            name = first
        elif roll < 0.22:
            name = f"{first} {rng.choice(FIRST_NAMES)} {last}"
        else:
            name = f"{first} {last}"
        email = None
        if rng.random() < 0.33:
            email = f"{first}.{last}{rng.randrange(1000)}@{rng.choice(DOMAINS)}".lower().replace("'", "")
        created = start + span * (index / count) + timedelta(seconds=rng.randrange(3600))
        contact_id = new_id("ctc")
        opted_in = rng.random() < 0.7
        contacts.append(
            {
                "id": contact_id,
                "organization_id": organization_id,
                "phone": phone,
                "name": name,
                "email": email,
                "opted_in": opted_in,
                "opted_in_changed_at": created if opted_in else None,
                "attributes": {"city": rng.choice(CITIES), "orders": rng.randrange(40)},
                "last_message_at": None,
                "last_inbound_at": None,
                "created_at": created,
                "updated_at": created,
            }
        )
        for tag in rng.sample(TAGS, k=rng.choice((0, 1, 1, 2, 2, 3))):
            tags.append({"organization_id": organization_id, "contact_id": contact_id, "tag": tag})
    return contacts, tags


def _progress(label: str) -> Callable[[int, int], None]:
    """Rewrites one line on a terminal; elsewhere (a log, CI) prints a line every 25,000 rows."""
    terminal = sys.stderr.isatty()

    def report(done: int, total: int) -> None:
        if terminal:
            end = "\n" if done >= total else ""
            print(f"\r  {label}: {done:>9,}/{total:,}", end=end, file=sys.stderr, flush=True)
        elif done >= total or done % 25_000 < CHUNK:
            print(f"  {label}: {done:>9,}/{total:,}", file=sys.stderr, flush=True)

    return report


async def seed_contacts(database_url: str, organization_id: str, count: int, *, seed: int = 2026) -> SeededContacts:
    """Insert `count` contacts (and their tags) into `organization_id`; progress goes to stderr."""
    contacts, tags = _rows(organization_id, count, seed)
    database = Database(database_url)
    try:
        for model, rows, label in ((Contact, contacts, "contacts"), (ContactTag, tags, "tags")):
            report = _progress(f"seeding {label}")
            async with database.engine.begin() as connection:
                for offset in range(0, len(rows), CHUNK):
                    await connection.execute(insert(model), rows[offset : offset + CHUNK])
                    report(min(offset + CHUNK, len(rows)), len(rows))
        async with database.engine.begin() as connection:
            stored = await connection.scalar(
                select(func.count()).select_from(Contact).where(Contact.organization_id == organization_id)
            )
            if stored != count:
                raise RuntimeError(f"seeded {count} contacts but the database holds {stored}")
            if database.dialect == "sqlite":
                indexed = await connection.scalar(text("SELECT count(*) FROM contacts_fts"))
                if indexed is None or indexed < count:
                    raise RuntimeError(f"contacts_fts holds {indexed} rows for {count} contacts: triggers missing?")
            else:
                # Autovacuum would analyze after this many inserts within a minute; don't wait for it.
                await connection.execute(text("ANALYZE contacts"))
                await connection.execute(text("ANALYZE contact_tags"))
    finally:
        await database.dispose()
    return SeededContacts(
        count=count,
        tags=len(tags),
        names=[row["name"] for row in contacts],
        phones=[row["phone"] for row in contacts],
    )


REPLIES = (
    "Your order has shipped and arrives tomorrow.",
    "We open at 10 am tomorrow. See you!",
    "Done: the delivery address is now your office.",
    "Yes, size M is in stock. Shall we keep one for you?",
)


async def seed_queued_sends(
    database_url: str, organization_id: str, count: int, *, run_at: datetime, seed: int = 2026
) -> list[str]:
    """`count` queued text replies to `count` distinct customers, their send jobs due at `run_at`.

    Returns the message ids. The jobs are written exactly as `enqueue` writes them, with the run time
    the caller picks, so workers can be started first and the clock started when the jobs fall due.
    """
    rng = random.Random(seed)
    moment = clock_now()
    wrote_at = moment - timedelta(hours=1)
    rows: dict[type, list[dict[str, Any]]] = {Contact: [], Conversation: [], Message: [], Job: []}
    for phone in _phones(rng, count):
        contact_id, conversation_id, message_id = new_id("ctc"), new_id("cnv"), new_id("msg")
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        rows[Contact].append(
            {
                "id": contact_id,
                "organization_id": organization_id,
                "phone": phone,
                "name": name,
                "email": None,
                "opted_in": True,
                "opted_in_changed_at": wrote_at,
                "attributes": {},
                "last_message_at": moment,
                "last_inbound_at": wrote_at,
                "created_at": wrote_at,
                "updated_at": moment,
            }
        )
        rows[Conversation].append(
            {
                "id": conversation_id,
                "organization_id": organization_id,
                "contact_id": contact_id,
                "status": "OPEN",
                "assignee_id": None,
                "unread_count": 0,
                "last_message_at": moment,
                "resolved_at": None,
                "created_at": wrote_at,
                "updated_at": moment,
            }
        )
        rows[Message].append(
            {
                "id": message_id,
                "organization_id": organization_id,
                "conversation_id": conversation_id,
                "contact_id": contact_id,
                "direction": "outbound",
                "type": "text",
                "status": "queued",
                "status_rank": 0,
                "content": {"text": f"Hi {name.split()[0]}! {rng.choice(REPLIES)}"},
                "created_at": moment,
            }
        )
        rows[Job].append(
            {
                "id": new_id("job"),
                "kind": SEND_JOB,
                "organization_id": organization_id,
                "payload": {"messageId": message_id},
                "status": "pending",
                "run_at": run_at,
                "attempts": 0,
                "max_attempts": 10,
                "created_at": moment,
            }
        )
    database = Database(database_url)
    try:
        for model, items in rows.items():
            report = _progress(f"seeding {model.__tablename__}")  # type: ignore[attr-defined]
            async with database.engine.begin() as connection:
                for offset in range(0, len(items), CHUNK):
                    await connection.execute(insert(model), items[offset : offset + CHUNK])
                    report(min(offset + CHUNK, len(items)), len(items))
        if database.dialect == "postgresql":
            async with database.engine.begin() as connection:
                for table in ("contacts", "conversations", "messages", "jobs"):
                    await connection.execute(text(f"ANALYZE {table}"))
    finally:
        await database.dispose()
    return [row["id"] for row in rows[Message]]
