"""Messages: sending every WhatsApp type, recording inbound ones, and their delivery status."""
