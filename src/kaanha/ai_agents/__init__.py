"""AI agents: configured assistants that answer customers from the organization's knowledge and hand over to people."""
