"""Secrets at rest (Fernet) and redaction of secrets from everything the system writes or sends."""
