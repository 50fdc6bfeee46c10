from django.db import models


class WorkerPing(models.Model):
    """A row written by a worker on request: proves broker, worker and database agree."""

    token = models.CharField(max_length=64, unique=True)
    hostname = models.CharField(max_length=255)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.token} from {self.hostname}"
