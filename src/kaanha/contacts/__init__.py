"""Contacts: the customers an organization talks to, with tags, opt-in and custom attributes."""
