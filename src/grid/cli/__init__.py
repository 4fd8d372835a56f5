"""Command-line front-end (L5): Typer + rich, no business logic."""
