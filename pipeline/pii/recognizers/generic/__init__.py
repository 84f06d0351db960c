"""Structured identifiers in any context: cards, IBANs, phones, e-mails, IPs, URLs."""
