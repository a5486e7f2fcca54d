"""diphoton task."""
