import time

from .context import customer_id_var, request_id_from, request_id_var, user_id_var

REQUEST_ID_HEADER = "X-Request-ID"


class RequestIdMiddleware:
    """First in MIDDLEWARE: gives each request an id (the proxy's X-Request-ID if sane), puts it in the
    log context and echoes it in the response's X-Request-ID header."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        request_id_var.set(request_id)
        user_id_var.set(None)
        customer_id_var.set(None)
        # Cleared on request_finished (ops.apps), not here: Django logs 4xx/5xx responses
        # ("django.request") after the middleware chain returns, and those lines need the id too.
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response


def clear_log_context(**kwargs) -> None:
    request_id_var.set(None)
    user_id_var.set(None)
    customer_id_var.set(None)


class LogUserMiddleware:
    """After AuthenticationMiddleware: adds the signed-in user's id and customer id to the log context."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            user_id_var.set(user.pk)
            customer_id_var.set(getattr(user, "customer_id", None))
        return self.get_response(request)


class RequestMetricsMiddleware:
    """Observes each request's latency per view (route name) for /metrics."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from .metrics import REQUEST_LATENCY

        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or match._func_path) if match else "<unresolved>"
        REQUEST_LATENCY.labels(view=view, method=request.method, status=str(response.status_code)[0] + "xx").observe(
            time.perf_counter() - started)
        return response
