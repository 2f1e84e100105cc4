"""Configuration: the schema, the pair syntax and the loader that merges file, .env and environment."""
