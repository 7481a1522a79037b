from django.db import models


class Execution(models.Model):
    """One performance of a test job, recorded by the job itself (a side table)."""

    key = models.CharField(max_length=100, db_index=True)
    job_id = models.BigIntegerField(null=True)
    pid = models.IntegerField(default=0)
    started = models.FloatField(default=0)
    ended = models.FloatField(default=0)

    def __str__(self) -> str:
        return self.key
