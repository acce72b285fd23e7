"""`python -m langgraph_rollback`: the command line (see `cli`)."""

import sys

from langgraph_rollback.cli import main

sys.exit(main())
