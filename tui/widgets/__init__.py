"""The dashboard's widgets, each named for what it shows."""
