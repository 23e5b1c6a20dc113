"""fsw/ground."""
