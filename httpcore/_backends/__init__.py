"""Network backends: the only code that touches sockets. See ``base`` for the interface."""
