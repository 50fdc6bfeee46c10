"""Django's PostgreSQL backend with a pool check paid once a second per connection
(``config.postgresql.base``)."""
