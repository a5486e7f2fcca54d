"""thermo task."""
