"""Importers for outside data formats (TNTP, LibCity, wide tables)."""
