"""rre task."""
