"""The event log: every change customers' servers and live views hear about."""
