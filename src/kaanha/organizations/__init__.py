"""Organizations (tenants), their plan, and their WhatsApp connection."""
