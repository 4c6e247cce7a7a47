"""Analytics: message, conversation, agent and broadcast figures over a range, in the organization's time zone."""
