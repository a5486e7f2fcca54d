"""particles task."""
