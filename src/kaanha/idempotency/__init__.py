"""Idempotency-Key support: a retried POST returns the first answer and does nothing again."""
