"""The bundled sample: Banking77 turned into a bank's ticket export with planted problems."""
