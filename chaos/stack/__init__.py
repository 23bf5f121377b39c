"""A run's environment behind one seam (``chaos.stack.base.Stack``): Docker, loopback, external."""
