"""Background work of broadcasts."""
