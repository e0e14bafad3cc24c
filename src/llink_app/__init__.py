"""The llink app: the `llink` command, its training recipes, the demo and its report.

It builds on the library (`llink`); the library never imports it."""
