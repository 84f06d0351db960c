"""PII: the masker, its recognizers, the independent leak guard and the masking evaluation."""
