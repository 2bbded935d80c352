"""The investigation graph (LangGraph): intake, route, gather, diagnose, propose, finalize."""
