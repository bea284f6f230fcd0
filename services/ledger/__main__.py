"""`python -m services.ledger ...`: the command line (cli.py)."""

from .cli import MIGRATIONS, main

__all__ = ["MIGRATIONS", "main"]

if __name__ == "__main__":
    main()
