"""Approved sample templates every sandbox organization starts with, so a first conversation needs no set-up."""

from __future__ import annotations

from typing import Any

SAMPLE_TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "hello_world",
        "language": "en_US",
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
            {
                "type": "BODY",
                "text": "Welcome and congratulations!! This message demonstrates your ability to send a "
                "WhatsApp message notification from the Cloud API, hosted by Meta. Thank you for "
                "taking the time to test with us.",
            },
            {"type": "FOOTER", "text": "WhatsApp Business Platform sample message"},
        ],
    },
    {
        "name": "order_update",
        "language": "en_US",
        "category": "UTILITY",
        "components": [
            {
                "type": "BODY",
                "text": "Hi {{1}}, your order {{2}} is on its way.",
                "example": {"body_text": [["Asha", "#1042"]]},
            },
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Thanks"}]},
        ],
    },
    {
        "name": "appointment_reminder",
        "language": "en",
        "category": "UTILITY",
        "components": [
            {
                "type": "HEADER",
                "format": "TEXT",
                "text": "Reminder for {{1}}",
                "example": {"header_text": ["Asha"]},
            },
            {
                "type": "BODY",
                "text": "Your appointment is on {{1}} at {{2}}. Reply to reschedule.",
                "example": {"body_text": [["Monday", "10:00"]]},
            },
        ],
    },
]
