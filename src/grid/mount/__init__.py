"""Read-only FUSE mount of a version at /datastores/<name>/<version> (front-end over the client)."""
