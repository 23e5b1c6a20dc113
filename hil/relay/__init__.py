"""hil/relay."""
