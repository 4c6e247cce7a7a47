"""Conversations: one thread per contact, its status (OPEN, ASSIGNED, RESOLVED), assignee and unread count."""
