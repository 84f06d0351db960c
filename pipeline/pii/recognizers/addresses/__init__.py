"""Address recognizers: streets, address blocks, corners and postcodes."""
