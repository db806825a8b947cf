"""`python -m services.policy` runs one copy of the policy service."""

from services.policy.app import SERVICE, build_app
from services.policy.settings import PolicySettings
from shared.service import run_service

settings = PolicySettings()
run_service(build_app(settings), service=SERVICE, settings=settings)
