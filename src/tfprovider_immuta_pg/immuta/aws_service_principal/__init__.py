"""immuta_aws_service_principal: `schema.py` declares it, `resource.py` plans it, `worker.py` does
the work, `external_id.py` keeps the salted hash of the write-only external ID."""
