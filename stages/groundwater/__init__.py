"""groundwater task."""
