"""triageflow classifier."""
