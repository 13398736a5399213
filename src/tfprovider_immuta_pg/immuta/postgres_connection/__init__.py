"""immuta_postgres_connection: `schema.py` declares it, `resource.py` plans it,
`worker.py` does the work."""
