"""The ``sanji`` command: one module per subcommand, each with a ``run()`` tests can call."""
