"""Message templates: the approved messages that may open a conversation outside the 24-hour window."""
