"""`python -m services.router` runs one copy of the router."""

from services.router.app import SERVICE, build_app
from services.router.settings import RouterSettings
from shared.service import run_service

settings = RouterSettings()
run_service(build_app(settings), service=SERVICE, settings=settings)
