"""Shell scripts that stand in for MODFLOW 6 in the failure tests: they answer ``--version`` as mf6 does (the
runner checks it before any run) and do something else on a run."""

from __future__ import annotations

from pathlib import Path


def stand_in_mf6(path: Path, on_run: str, real: Path | None = None) -> Path:
    """An executable at ``path`` whose ``--version`` is the real mf6's (or a plain 'mf6: 6.4.1' without one) and
    whose runs execute the shell lines ``on_run``."""
    version = f'exec "{real}" "$@"' if real else 'echo "mf6: 6.4.1"; exit 0'
    path.write_text(f'#!/bin/sh\nif [ "$1" = "--version" ]; then {version}; fi\n{on_run}\n')
    path.chmod(0o755)
    return path
