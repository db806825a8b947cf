"""`python -m services.classifier` runs one copy of the classifier."""

from services.classifier.app import SERVICE, build_app
from services.classifier.settings import ClassifierSettings
from shared.service import run_service

settings = ClassifierSettings()
run_service(build_app(settings), service=SERVICE, settings=settings)
