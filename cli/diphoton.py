"""`phys-ml diphoton ...`: inspect ATLAS open-data ROOT files before pointing the generate stage at them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Diphoton task helpers: check ATLAS open-data ROOT files (tree 'mini').",
                  no_args_is_help=True)


@app.command("inspect-root")
def inspect_root(
    files: Annotated[list[Path], typer.Argument(help="ROOT files with the tree 'mini' (MeV).")],
    tight_id: Annotated[bool, typer.Option("--tight-id", help="Require both photons tight.")] = False,
    trigger: Annotated[bool, typer.Option("--trigger", help="Require the diphoton trigger trigP.")] = False,
) -> None:
    """Count the events passing the paper's selection and print their Table 1 correlation row."""
    from phys_ml.stages.common.report import markdown_table
    from phys_ml.stages.diphoton.metrics import correlation_row
    from phys_ml.stages.diphoton.opendata import read_events

    x = read_events([str(f) for f in files], require_tight_id=tight_id, require_trigger=trigger)
    print(f"{len(x)} events pass the selection")
    if len(x) > 2:
        row = correlation_row(x)
        print(markdown_table(list(row), [list(row.values())]))
