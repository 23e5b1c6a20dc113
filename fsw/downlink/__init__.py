"""fsw/downlink."""
