from django.db import models


class Heartbeat(models.Model):
    """The last sign of life of one process or job: "beat", "worker:<hostname>", "ledger-audit".

    One row per name, overwritten in place, so the table stays tiny; /healthz and /metrics read it.
    `ok` is set by jobs that report a result (the nightly ledger audit), None for plain liveness.
    """

    name = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField()
    ok = models.BooleanField(null=True)
    detail = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.seen_at:%Y-%m-%d %H:%M:%S}"
