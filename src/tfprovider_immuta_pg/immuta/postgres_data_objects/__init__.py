"""immuta_postgres_data_objects: `schema.py` declares it, `data_source.py` serves it, `worker.py`
reads."""
