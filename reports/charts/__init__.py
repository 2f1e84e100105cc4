"""One module per chart; each returns PNG bytes sized for a phone."""
