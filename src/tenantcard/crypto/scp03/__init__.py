"""tenantcard.crypto.scp03."""
