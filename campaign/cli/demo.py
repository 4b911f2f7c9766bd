"""`campaign demo`: the whole pipeline on the samples, against the built-in simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from campaign.cli.app import app
from campaign.cli.common import ConfigOption, DbOption, JsonOption, handle_errors, info, print_json

OutOption = Annotated[
    Path,
    typer.Option(
        "--out", metavar="DIR", help="Folder for the result spreadsheet and the demo store."
    ),
]


@app.command()
@handle_errors
def demo(
    out: OutOption = Path("demo-output"),
    config: ConfigOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Run the whole pipeline on sample_data/ against the built-in gateway simulator.

    Sends the sample lists, receives the pushed delivery reports and an opt-out reply,
    and writes the result spreadsheet. No credentials, no network beyond loopback.
    The demo keeps its own store, DIR/campaign-demo.db: --db, CAMPAIGN_DB, --config and
    the current folder's campaign.db are never opened. A re-run replaces the demo's own
    files; a foreign file at one of their names is refused (exit 3), never replaced.

    Example:
      campaign demo --out demo-output
    """
    from campaign.demo import DEMO_STORE, run_demo

    if db is not None or config is not None:
        info(f"the demo uses its own store {out / DEMO_STORE}; --db/--config are not used")
    result = run_demo(out, notify=info)
    if json_output:
        print_json(result.summary())
        return
    typer.echo(
        f"Demo campaign {result.campaign_id}: {result.rows} rows read, "
        f"{result.recipients} recipients in {result.requests} requests, "
        f"{result.segments} billed segments ({result.seconds:.1f} s)"
    )
    for outcome, count in result.outcomes.items():
        typer.echo(f"  {outcome:<11} {count:>6}")
    typer.echo(f"Result spreadsheet: {result.workbook}")
    store = f"sqlite:///{(out / DEMO_STORE).resolve()}"
    typer.echo(
        "Open it in the browser console:\n"
        f"  campaign user add admin --role admin --db '{store}'\n"
        f"  campaign web --no-worker --db '{store}'   # then http://127.0.0.1:8000/"
    )
