"""Typer command-line interface (no science here)."""
