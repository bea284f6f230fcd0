"""`python -m services.donations ...`: the command line (cli.py)."""

from .cli import MIGRATIONS, main

__all__ = ["MIGRATIONS"]

if __name__ == "__main__":
    main()
