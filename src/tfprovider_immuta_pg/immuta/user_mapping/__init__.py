"""immuta_user_mapping: `schema.py` declares it, `resource.py` plans it,
`worker.py` does the work."""
