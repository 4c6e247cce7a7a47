"""Meta's WhatsApp Cloud API: request bodies, the Graph API client and the provider built on them."""
