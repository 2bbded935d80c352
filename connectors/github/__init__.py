"""GitHub connector: production deploy history, releases and commits of the gateway repository."""
