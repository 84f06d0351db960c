"""Place recognizers: a gazetteer and location cues."""
