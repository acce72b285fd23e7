"""Ready-made reversible tools, each tested against the real thing.

- `files`: write, append, delete, move files and make directories in a
  workspace, with before-images in the ledger;
- `git`: snapshot a whole working tree at each step in a separate git
  directory, and restore it on rollback;
- `sql`: insert, update and delete rows (SQLite, PostgreSQL) with their
  before-images, restored on rollback, with drift detection.
"""
