"""Person-name recognizers: cues, Slavic and Turkic name shapes, lexicons of given names and surnames."""
