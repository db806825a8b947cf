"""`python -m services.cli` runs the operator command line."""

from services.cli.main import main

main()
