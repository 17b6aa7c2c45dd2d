"""`python -m tfyolo ...` is the `tfyolo` command (how `tfyolo serve` starts its workers)."""

from tfyolo.cli.main import main

main()
