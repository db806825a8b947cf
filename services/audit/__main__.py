"""`python -m services.audit` runs one copy of the audit consumer."""

from services.audit.app import SERVICE, build_app
from services.audit.settings import AuditSettings
from shared.service import run_service

settings = AuditSettings()
run_service(build_app(settings), service=SERVICE, settings=settings)
