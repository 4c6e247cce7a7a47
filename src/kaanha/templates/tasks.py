"""Background work of templates."""
