"""Broadcasts: one approved template sent to many contacts, paced, exactly once each."""
