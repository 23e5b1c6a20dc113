"""Device drivers: each talks to its device over a real link and publishes on the bus."""
