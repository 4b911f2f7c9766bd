"""The options and arguments commands share (typer declarations only)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from campaign.config_names import ENV_CONFIG, ENV_DB, ENV_GATEWAY, SIMULATOR

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", envvar=ENV_CONFIG, metavar="FILE", help="TOML config file.", show_default=False
    ),
]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar=ENV_DB,
        metavar="URL",
        help="Store URL (sqlite:///file.db or postgresql://...); default campaign.db here.",
        show_default=False,
    ),
]


def _gateway_url(value: str | None) -> str | None:
    """`--gateway` (or CAMPAIGN_GATEWAY): an http(s) URL or `simulator`, else a usage error."""
    from campaign.config import is_gateway_url
    from campaign.redact import redact_url

    if value is None or is_gateway_url(value):  # one check, shared with the config file
        return value
    raise typer.BadParameter(
        f"{redact_url(value)!r} is neither an http(s) URL (e.g. http://send.18sms.com/msg) "
        f"nor '{SIMULATOR}'"
    )


GatewayOption = Annotated[
    str | None,
    typer.Option(
        "--gateway",
        envvar=ENV_GATEWAY,
        metavar="URL",
        help="Gateway base URL, or 'simulator' for the built-in one.",
        show_default=False,
        callback=_gateway_url,
    ),
]
TemplateOption = Annotated[
    Path | None,
    typer.Option(
        "--template",
        "-t",
        metavar="FILE",
        help="Template file (UTF-8 text). Give -t FILE or --text.",
        show_default=False,
    ),
]
TextOption = Annotated[
    str | None,
    typer.Option(
        "--text",
        metavar="TEXT",
        help="The template text itself, instead of -t FILE.",
        show_default=False,
    ),
]
SheetOption = Annotated[
    str | None,
    typer.Option("--sheet", metavar="NAME", help="Sheet of the workbooks.", show_default=False),
]
HeaderRowOption = Annotated[
    int | None,
    typer.Option(
        "--header-row", metavar="N", help="Row number of the header (1-based).", show_default=False
    ),
]
MobileColumnOption = Annotated[
    str | None,
    typer.Option(
        "--mobile-column", metavar="NAME", help="Header of the mobile column.", show_default=False
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON object on stdout, nothing else.")
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
NoWaitOption = Annotated[
    bool,
    typer.Option("--no-wait", help="Outside the send window, stop at once (exit 4, resumable)."),
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Send even when the balance looks too low.")
]
AgainOption = Annotated[
    bool,
    typer.Option(
        "--again",
        help="Send a list that the store already holds as a campaign once more, on purpose.",
    ),
]
NameOption = Annotated[str | None, typer.Option("--name", metavar="TEXT", help="Campaign name.")]
CampaignArg = Annotated[
    str, typer.Argument(metavar="ID", help="Campaign id (or name).", show_default=False)
]
FilesArg = Annotated[
    list[Path], typer.Argument(metavar="FILE", help="Contact files (xlsx, xls, csv).")
]
ResendOption = Annotated[
    bool, typer.Option("--resend-unknown", help="Also send the requests whose result is unknown.")
]
MobilesArg = Annotated[
    list[str],
    typer.Argument(metavar="MOBILE", help="Mobile numbers (11 digits; +86 and spaces are fine)."),
]
NoteOption = Annotated[
    str | None,
    typer.Option(
        "--note", metavar="TEXT", help="Why, kept with each entry (its detail).", show_default=False
    ),
]
DetailsOption = Annotated[
    bool,
    typer.Option(
        "--details",
        "-l",
        help="A table of where each entry came from (with --json: objects, not numbers).",
    ),
]
OptoutOutOption = Annotated[
    Path, typer.Option("--out", "-o", metavar="FILE", help="The file to write: .xlsx or .csv.")
]
OptoutFileArg = Annotated[
    str, typer.Argument(metavar="FILE", help="CSV/XLSX file with a mobile column.")
]
