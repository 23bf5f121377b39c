"""Docker runtime: engine bootstrap, image builds, networks, containers, cleanup."""
