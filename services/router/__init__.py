"""triageflow router."""
