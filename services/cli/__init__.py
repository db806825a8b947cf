"""triageflow cli."""
