"""The environment variables that point `campaign` at a store, config or gateway: tests of
the CLI run without them (in an empty folder, where the default store is ./campaign.db)."""

CAMPAIGN_ENV = ("CAMPAIGN_DB", "CAMPAIGN_CONFIG", "CAMPAIGN_GATEWAY")
