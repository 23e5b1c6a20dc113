"""fsw/bus."""
