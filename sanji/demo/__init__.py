"""A whole county on loopback: separate node processes, and staff played by a script."""
