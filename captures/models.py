"""PNM operations, capture groups and transactions."""
