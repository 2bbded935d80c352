"""Versioned YAML playbooks and their schema."""
