"""The `aibroker` command line."""
