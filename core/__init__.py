"""Settings, errors, resilience, the model gateway and telemetry. Imports nothing of sleuth."""
