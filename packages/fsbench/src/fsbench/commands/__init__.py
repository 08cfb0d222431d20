"""fsbench's subcommands beyond run, eval and reproduce, one module each."""
