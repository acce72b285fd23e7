"""`python -m langgraph_rollback`: the command line (see `cli`)."""

import sys

from langgraph_rollback.cli import main

if __name__ == "__main__":
    sys.exit(main())
