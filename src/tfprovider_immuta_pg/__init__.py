"""Terraform provider immuta-pg/immuta, written in Python."""

__version__ = "0.1.0"
