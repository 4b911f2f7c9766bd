"""The gateway: protocol tables and parsing, the HTTP client, the built-in simulator.

from campaign.gateway.client import GatewayClient       # imports requests
from campaign.gateway.simulator import Simulator        # imports uvicorn
"""

from __future__ import annotations

from campaign.gateway.protocol import (
    Accepted,
    Action,
    Ambiguous,
    BalanceResult,
    Balances,
    CodeInfo,
    NotSent,
    Refused,
    StatusGroup,
    StatusInfo,
    SubmitResult,
    balance_code_info,
    report_status_info,
    submit_code_info,
)

__all__ = [
    "Accepted",
    "Action",
    "Ambiguous",
    "BalanceResult",
    "Balances",
    "CodeInfo",
    "NotSent",
    "Refused",
    "StatusGroup",
    "StatusInfo",
    "SubmitResult",
    "balance_code_info",
    "report_status_info",
    "submit_code_info",
]
