"""fsw/app."""
