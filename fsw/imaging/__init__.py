"""fsw/imaging."""
