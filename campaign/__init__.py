"""campaign: bulk SMS campaigns from spreadsheets, with delivery reports joined back."""

__version__ = "0.1.0"
