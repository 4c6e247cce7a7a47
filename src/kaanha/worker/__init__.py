"""The durable job queue: jobs written in the caller's transaction, claimed by workers with a lease."""
