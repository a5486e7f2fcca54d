"""Shared pieces used by more than one task."""
