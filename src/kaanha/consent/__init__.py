"""Marketing consent: contacts opting in and out, by API or by keyword, and the history of it."""
