"""Statuspage connector: incidents and current status of the gateway's and providers' pages."""
