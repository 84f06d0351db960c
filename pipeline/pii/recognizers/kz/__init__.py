"""Kazakhstan's identifiers: IIN and BIN with their check digit."""
