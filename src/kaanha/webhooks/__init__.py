"""Outgoing webhooks: customers' endpoints, signed deliveries retried for days, and their log."""
