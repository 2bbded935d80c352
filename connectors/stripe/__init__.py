"""The Stripe connector: customers, subscriptions, invoices, charges and refunds, read-only."""
