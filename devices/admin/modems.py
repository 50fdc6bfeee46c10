"""Admin for cable modems."""
