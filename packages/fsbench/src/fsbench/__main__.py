"""``python -m fsbench``: the same as the ``fsbench`` command."""

from fsbench.cli import main

main()
