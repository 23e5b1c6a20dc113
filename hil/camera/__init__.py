"""hil/camera."""
