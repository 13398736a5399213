"""immuta_postgres_preflight: `schema.py` declares it, `data_source.py` serves it,
`worker.py` reads."""
