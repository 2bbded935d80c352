"""Autonomy taxonomy, redaction, audit log and human approval."""
