"""The names the settings are read by: environment variables and the built-in gateway's
name. A leaf with no imports, so that the command line can declare its options (`--db`
reads CAMPAIGN_DB, ...) without loading `campaign.config` before a command runs."""

from __future__ import annotations

SIMULATOR = "simulator"  # the gateway URL that means the built-in simulator

ENV_CONFIG = "CAMPAIGN_CONFIG"
ENV_DB = "CAMPAIGN_DB"
ENV_GATEWAY = "CAMPAIGN_GATEWAY"
ENV_ACCOUNT = "CAMPAIGN_ACCOUNT"
ENV_PASSWORD = "CAMPAIGN_PASSWORD"
