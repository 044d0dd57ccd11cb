"""Per-request log context (request id, user id, customer id), read by ops.logs.RequestContextFilter."""
import contextvars
import re
import uuid

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
user_id_var: contextvars.ContextVar[int | None] = contextvars.ContextVar("user_id", default=None)
customer_id_var: contextvars.ContextVar[int | None] = contextvars.ContextVar("customer_id", default=None)

# An id from the proxy (nginx's $request_id, a load balancer's trace id) is kept only if it is a
# short plain token: it goes into every log line and a response header.
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def request_id_from(header_value: str | None) -> str:
    if header_value and _INCOMING_ID.match(header_value):
        return header_value
    return uuid.uuid4().hex
