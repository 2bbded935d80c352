"""The redaction corpus, its generator and its scorer."""
