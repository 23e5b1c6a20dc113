"""drivers/camera."""
