"""The studies: one sub-package per task, shared pieces in ``common``."""
