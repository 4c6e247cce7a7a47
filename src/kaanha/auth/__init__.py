"""Who is calling: API keys with scopes, passwords, and the principal every request acts as."""
