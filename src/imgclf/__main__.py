"""`python -m imgclf`: the same as the `imgclf` command."""

from .cli import main

main()
