"""Groups of `kb` commands, one module per area; each lists its commands in `COMMANDS` and
`kb.cli` registers them on the one `kb` app."""
