"""`python -m procmap`: the same command line as `procmap`."""

from .cli import main

main()
