"""The MCP server: tools for AI assistants, thin wrappers over the same services as the REST API."""
