"""Classifier backends: the `Backend` protocol and its implementations.

`base` holds the contract (`Backend`, `Prediction`); `local` the offline TF-IDF + logistic
regression model. Import `local` only where scikit-learn is wanted: it is the heavy one.
"""

from services.classifier.backends.base import ALTERNATIVES, Backend, Prediction, ranked, ticket_text

__all__ = ["ALTERNATIVES", "Backend", "Prediction", "ranked", "ticket_text"]
