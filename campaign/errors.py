"""The one error tree of the project and the exit codes of SPEC.

    CampaignError                 anything the user should see as "Error: ..." (exit 1)
    ├── UsageError                a wrong combination of options (exit 2)
    ├── InputError                bad input, nothing sent (exit 3)
    │   ├── ConfigError           a config file or setting that cannot be used
    │   ├── ContactsError         a contact file that cannot be read or used
    │   ├── TemplateError         a template that cannot be rendered
    │   ├── StoreError            a store that does not open or is too new
    │   ├── NotFoundError         a campaign id or name that does not exist
    │   └── RepeatError           a list or a name the store already holds as a campaign
    └── GatewayStop               the gateway or the account stopped the run (exit 4)

Ctrl-C is no CampaignError: the CLI maps KeyboardInterrupt to ExitCode.INTERRUPTED (130).
Row-level problems are never exceptions: they become an outcome and a reason.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of SPEC.md."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    BAD_INPUT = 3
    GATEWAY_STOP = 4
    PARTIAL = 5  # finished, but some batches are unknown or rejected
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it); resumable


class CampaignError(Exception):
    """Base of every error meant for the user; `str(error)` is the message."""

    exit_code: ExitCode = ExitCode.UNEXPECTED


class UsageError(CampaignError):
    exit_code = ExitCode.USAGE


class InputError(CampaignError):
    exit_code = ExitCode.BAD_INPUT


class ConfigError(InputError):
    pass


class ContactsError(InputError):
    pass


class TemplateError(InputError):
    pass


class StoreError(InputError):
    pass


class NotFoundError(InputError):
    pass


class RepeatError(InputError):
    """`send` of a list (or a --name) that a stored campaign already has: `campaign_id`
    is that campaign; `name_taken` when the name repeats (not the list)."""

    def __init__(
        self, message: str, campaign_id: int | None = None, *, name_taken: bool = False
    ) -> None:
        super().__init__(message)
        self.campaign_id = campaign_id
        self.name_taken = name_taken


class GatewayStop(CampaignError):
    """The gateway or the account stopped the run: resumable later."""

    exit_code = ExitCode.GATEWAY_STOP
