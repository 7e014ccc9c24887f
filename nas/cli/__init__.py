"""Command-line interface: parses arguments and dispatches; nothing in the package imports it."""
