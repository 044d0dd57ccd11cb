"""JSON log lines (LOG_FORMAT=json) carrying the request id, user id and customer id of the request
being served; the same fields are added to plain lines so both formats can be grepped alike."""
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from .context import customer_id_var, request_id_var, user_id_var


class RequestContextFilter:
    """Adds request_id, user_id and customer_id (None outside a request) to every record."""

    def filter(self, record) -> bool:
        record.request_id = request_id_var.get()
        record.user_id = user_id_var.get()
        record.customer_id = customer_id_var.get()
        # For plain lines: " [request=… user=… customer=…]" inside a request, nothing outside.
        record.context = "" if record.request_id is None else (
            f" [request={record.request_id} user={record.user_id} customer={record.customer_id}]")
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: timestamp, level, logger, message, request/user/customer ids, extras."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger", "asctime": "timestamp"})
        kwargs.setdefault("timestamp", False)
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "context"])  # "context" is for plain lines only
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(user_id)s %(customer_id)s",
                         *args, **kwargs)

    def formatTime(self, record, datefmt=None):  # noqa: N802 - logging's name
        from datetime import datetime, timezone

        return datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds")
