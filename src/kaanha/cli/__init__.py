"""The `kaanha` command line."""
