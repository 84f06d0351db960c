"""The embedded OpenAI-compatible provider: a separate program on loopback with small lexical stand-in models."""
