"""Generator of historical ticket cases (variants of the public cases)."""
