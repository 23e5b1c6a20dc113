"""Hardware-in-the-loop emulators: cameras, mechanisms and the relay link."""
