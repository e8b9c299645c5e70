"""`python -m looop` — same entry point as the console script."""
import sys

from looop.cli.main import main

sys.exit(main())
