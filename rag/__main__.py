"""`python -m rag ...`: the `rag` command, for an environment where the console script is not on PATH."""

from rag.cli import main

raise SystemExit(main())
