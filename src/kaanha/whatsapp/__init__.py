"""WhatsApp connections: the provider interface, the sandbox, and the inbound webhook pipeline."""
