"""immuta_user_mappings: `schema.py` declares it, `resource.py` plans it,
`worker.py` does the work."""
