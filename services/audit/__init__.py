"""triageflow audit."""
