"""PII and secret redaction with per-investigation placeholders (Presidio, fully offline).

Importing this package is cheap: Presidio and spaCy load when the first text is analyzed.
"""

from governance.redaction.redactor import Finding, Redactor
from governance.redaction.vault import InMemoryVault, SqlVault, Vault

__all__ = ["Finding", "InMemoryVault", "Redactor", "SqlVault", "Vault"]
