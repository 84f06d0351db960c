"""Russian text: names and places through natasha's offline NER."""
