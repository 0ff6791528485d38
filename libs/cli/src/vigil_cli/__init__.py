"""vigil_cli: the `vigil` command — start the platform on one machine, check it, and use it."""
