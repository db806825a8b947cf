"""`python -m services.classifier` runs one copy of the classifier."""

from services.classifier.app import SERVICE, build_app, limit_compute_threads
from services.classifier.settings import ClassifierSettings
from shared.service import run_service

settings = ClassifierSettings()
limit_compute_threads(settings.compute_threads)
run_service(build_app(settings), service=SERVICE, settings=settings)
