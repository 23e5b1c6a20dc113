"""drivers/links."""
