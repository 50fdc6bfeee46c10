"""Device registry. One module per device family; import each model here."""
