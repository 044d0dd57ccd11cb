"""/api/v1/: the customer's account, balance, services, invoices, payments, tickets and notifications.

Each view checks the key's scope and the user's role (`KeyScopePermission`), fetches objects with the
app's selector scoped to the key's customer (another customer's id is a 404), validates input with
the page's own form and calls the page's own service: the API adds no rule of its own.
"""

from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers as s
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from accounts.client_ip import client_ip
from accounts.roles import Area, acting_customer
from accounts.services.activity import activity_record
from billing import selectors as billing_selectors
from billing.services.invoices import invoice_pay_from_balance
from billing.services.payers import invoice_payment_gate_check
from notifications import selectors as notification_selectors
from notifications import services as notification_services
from orders import forms as order_forms
from orders import selectors as order_selectors
from orders import server_control
from orders.services import cancelling, plan_change, renewing
from tickets import forms as ticket_forms
from tickets import selectors as ticket_selectors
from tickets import services as ticket_services
from tickets.downloads import attachment_response
from tickets.models import Ticket

from . import serializers
from .access import KeyRateThrottle, KeyScopePermission, NewestFirstCursor
from .authentication import ApiKeyAuthentication
from .errors import form_errors
from .idempotency import idempotent
from .scopes import READ, WRITE

ERRORS = {code: serializers.ErrorSerializer for code in (400, 401, 403, 404, 409, 422, 429)}
IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="Repeat-safe POST: the same key and body returns the stored response; another body, 422.")


def _form_data(request) -> QueryDict:
    """JSON bodies and form posts as the QueryDict the page's forms expect (lists become repeated keys)."""
    data = QueryDict(mutable=True)
    if hasattr(request.data, "lists"):
        for name, values in request.data.lists():
            data.setlist(name, values)
        return data
    for name, value in (request.data or {}).items():
        if isinstance(value, list):
            data.setlist(name, [str(v) for v in value])
        elif isinstance(value, bool):
            data[name] = "on" if value else ""
        elif value is not None:
            data[name] = str(value)
    return data


class CustomerApiView(GenericAPIView):
    """Base: the acting customer is the key's; state-changing calls are written to the activity log
    naming the key."""

    api_area = Area.ACCOUNT
    extra_scopes: tuple = ()
    audited = True  # state-changing calls are written to the activity log
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [KeyScopePermission]
    throttle_classes = [KeyRateThrottle]
    pagination_class = NewestFirstCursor
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @property
    def customer(self):
        return acting_customer(self.request)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if (self.audited and request.method not in ("GET", "HEAD", "OPTIONS") and response.status_code < 400
                and getattr(request, "auth", None) is not None and not response.get("Idempotent-Replayed")):
            key = request.auth
            activity_record(action="api_request", customer=key.customer, actor=request.user, ip=client_ip(request._request),
                            details={"api_key": key.name, "api_key_prefix": key.prefix, "method": request.method,
                                     "path": request.path, "status": response.status_code})
        return response


# --- account and balance ---------------------------------------------------------------------------

class AccountView(CustomerApiView):
    api_area = Area.ACCOUNT

    @extend_schema(responses={200: serializers.AccountSerializer, **ERRORS}, tags=["account"])
    def get(self, request):
        """The account the key acts for, the key's user and its scopes."""
        return Response(serializers.AccountSerializer(
            {"customer": self.customer, "user": request.user, "key_scopes": request.auth.scopes}).data)


class BalanceView(CustomerApiView):
    api_area = Area.BILLING

    @extend_schema(responses={200: serializers.BalanceSerializer, **ERRORS}, tags=["account"])
    def get(self, request):
        """The prepaid balance in the account currency, with its equivalents in the enabled currencies."""
        customer = self.customer
        balance = billing_selectors.balance_of(customer)
        currencies = billing_selectors.enabled_currencies()
        equivalents = [{"amount": row["amount"], "currency": row["currency"]}
                       for row in billing_selectors.equivalents(balance, customer.currency, currencies)
                       if row.get("amount") is not None]
        return Response(serializers.BalanceSerializer(
            {"balance": {"amount": balance, "currency": customer.currency}, "equivalents": equivalents}).data)


# --- services --------------------------------------------------------------------------------------

class ServiceListView(CustomerApiView):
    api_area = Area.SERVICES
    serializer_class = serializers.ServiceSerializer

    @extend_schema(parameters=[
        OpenApiParameter("status", str, enum=["pending", "active", "expired", "suspended", "cancelled", "terminated"]),
        OpenApiParameter("q", str, description="Search by ID, plan name or IP address."),
        OpenApiParameter("limit", int)], responses={200: serializers.ServiceSerializer(many=True), **ERRORS}, tags=["services"])
    def get(self, request):
        """The account's services (orders), newest first."""
        params = order_selectors.OrderListParams(query=request.query_params.get("q", "")[:100],
                                                 status=request.query_params.get("status", ""))
        orders = order_selectors.order_list(customer=self.customer, params=params).select_related("scheduled_plan")
        page = self.paginate_queryset(orders)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class ServiceDetailView(CustomerApiView):
    api_area = Area.SERVICES

    @extend_schema(responses={200: serializers.ServiceSerializer, **ERRORS}, tags=["services"])
    def get(self, request, service_id: int):
        order = order_selectors.order_get(customer=self.customer, order_id=service_id)
        return Response(serializers.ServiceSerializer(order).data)


def _service_action(order, *, paid: bool, scheduled: bool = False, invoice=None) -> Response:
    order = order_selectors.order_get(customer=order.customer, order_id=order.pk)
    return Response(serializers.ServiceActionSerializer(
        {"service": order, "paid": paid, "scheduled": scheduled, "invoice_id": invoice.pk if invoice else None}).data)


class ServiceRenewView(CustomerApiView):
    api_area = Area.SERVICES
    extra_scopes = ((Area.BILLING, WRITE),)  # renewing spends the balance, as on the page

    @extend_schema(request=inline_serializer("ServiceRenewRequest", {
        "periods": s.IntegerField(min_value=1), "period": s.IntegerField(required=False, help_text=(
            "The period you mean to renew (current_period + 1): a repeated call does not renew the next one too."))}),
        parameters=[IDEMPOTENCY_HEADER], responses={200: serializers.ServiceActionSerializer, **ERRORS}, tags=["services"])
    @idempotent
    def post(self, request, service_id: int):
        """Renew for N periods: paid from the balance when it covers it, else an invoice waits (invoice_id)."""
        order = order_selectors.order_get(customer=self.customer, order_id=service_id)
        form = order_forms.RenewForm(_form_data(request))
        if not form.is_valid():
            raise form_errors(form)
        result = renewing.order_renew(order=order, periods=form.cleaned_data["periods"], actor=request.user,
                                      expected_period=form.cleaned_data["period"])
        return _service_action(order, paid=result.paid, invoice=result.invoice)


class ServicePlansView(CustomerApiView):
    api_area = Area.SERVICES

    @extend_schema(responses={200: serializers.PlanChangeQuoteSerializer(many=True), **ERRORS}, tags=["services"])
    def get(self, request, service_id: int):
        """Plans this service can switch to, with what switching costs now (upgrades) or later (downgrades)."""
        order = order_selectors.order_get(customer=self.customer, order_id=service_id)
        quotes = []
        for plan in plan_change.plan_change_candidates(order):
            try:
                quotes.append(plan_change.plan_change_quote(order=order, plan=plan))
            except ValidationError:
                continue
        return Response(serializers.PlanChangeQuoteSerializer(quotes, many=True).data)


class ServiceChangePlanView(CustomerApiView):
    api_area = Area.SERVICES
    extra_scopes = ((Area.BILLING, WRITE),)

    @extend_schema(request=inline_serializer("ServiceChangePlanRequest", {
        "plan": s.IntegerField(), "expected_amount": s.DecimalField(max_digits=16, decimal_places=2, required=False, help_text=(
            "For an upgrade: amount_now from the plans list; refused if the price changed meanwhile."))}),
        parameters=[IDEMPOTENCY_HEADER], responses={200: serializers.ServiceActionSerializer, **ERRORS}, tags=["services"])
    @idempotent
    def post(self, request, service_id: int):
        """Upgrade now (prorated invoice, paid from the balance if it covers it) or schedule a downgrade."""
        order = order_selectors.order_get(customer=self.customer, order_id=service_id)
        form = order_forms.ChangePlanForm(_form_data(request), plans=plan_change.plan_change_candidates(order))
        if not form.is_valid():
            raise form_errors(form)
        plan_change.plan_change_quote(order=order, plan=form.cleaned_data["plan"])  # same refusals as the page
        result = plan_change.order_change_plan(order=order, plan=form.cleaned_data["plan"], actor=request.user,
                                               expected_amount=form.cleaned_data["expected_amount"])
        return _service_action(order, paid=result.paid, scheduled=result.scheduled, invoice=result.invoice)


class ServiceCancelView(CustomerApiView):
    api_area = Area.SERVICES

    @extend_schema(request=inline_serializer("ServiceCancelRequest", {
        "immediately": s.BooleanField(default=False, help_text="Otherwise at the end of the paid period. Unused time is not refunded.")}),
        parameters=[IDEMPOTENCY_HEADER], responses={200: serializers.ServiceSerializer, **ERRORS}, tags=["services"])
    @idempotent
    def post(self, request, service_id: int):
        """Cancel now or at the end of the paid period (a pending order is cancelled now)."""
        order = order_selectors.order_get(customer=self.customer, order_id=service_id)
        immediately = _form_data(request).get("immediately") in ("on", "true", "True", "1")
        cancelling.order_cancel(order=order, actor=request.user, immediately=immediately)
        return Response(serializers.ServiceSerializer(order_selectors.order_get(customer=self.customer, order_id=order.pk)).data)


class ServicePowerView(CustomerApiView):
    api_area = Area.SERVICES

    @extend_schema(request=inline_serializer("ServicePowerRequest", {
        "action": s.ChoiceField(choices=[str(a) for a in server_control.POWER_ACTIONS])}),
        parameters=[IDEMPOTENCY_HEADER], responses={202: inline_serializer("ServicePowerResponse", {
            "job_id": s.IntegerField(), "action": s.CharField(), "state": s.CharField()}), **ERRORS}, tags=["services"])
    @idempotent
    def post(self, request, service_id: int):
        """Start, shut down, reboot or power off the server: queued as a job (same rules and per-service
        rate limit as the service page); poll the service's state to see it finish."""
        import hashlib
        import uuid

        from django.conf import settings
        from rest_framework.exceptions import Throttled

        from core import ratelimit

        order = order_selectors.order_get(customer=self.customer, order_id=service_id)
        limit, window = ratelimit.parse_rule(settings.SERVER_POWER_RATE_LIMIT)
        retry_after = ratelimit.hit("server-power", str(order.pk), limit=limit, window=window)
        if retry_after:
            raise Throttled(wait=retry_after)
        idempotency_key = request.headers.get("Idempotency-Key", "").strip()
        request_id = (hashlib.sha256(f"api:{idempotency_key}".encode()).hexdigest()[:32] if idempotency_key
                      else uuid.uuid4().hex)
        job = server_control.server_power(order=order, action=str(_form_data(request).get("action", "")),
                                          request_id=request_id, actor=request.user, ip=client_ip(request._request))
        return Response({"job_id": job.pk, "action": job.action, "state": job.state}, status=status.HTTP_202_ACCEPTED)


# --- invoices and payments -------------------------------------------------------------------------

class InvoiceListView(CustomerApiView):
    api_area = Area.BILLING
    serializer_class = serializers.InvoiceSerializer

    @extend_schema(parameters=[
        OpenApiParameter("status", str, enum=list(billing_selectors.INVOICE_FILTERS)),
        OpenApiParameter("q", str, description="Search by number, line text or reference."),
        OpenApiParameter("limit", int)], responses={200: serializers.InvoiceSerializer(many=True), **ERRORS}, tags=["billing"])
    def get(self, request):
        """Invoices, newest first."""
        status_filter = request.query_params.get("status", "all")
        if status_filter not in billing_selectors.INVOICE_FILTERS:
            status_filter = "all"
        invoices = billing_selectors.invoice_list(customer=self.customer, status=status_filter,
                                                  search=request.query_params.get("q", "")[:100])
        page = self.paginate_queryset(invoices)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class InvoiceDetailView(CustomerApiView):
    api_area = Area.BILLING

    @extend_schema(responses={200: serializers.InvoiceDetailSerializer, **ERRORS}, tags=["billing"])
    def get(self, request, invoice_id: int):
        invoice = billing_selectors.invoice_get(customer=self.customer, invoice_id=invoice_id)
        return Response(serializers.InvoiceDetailSerializer(invoice).data)


class InvoicePdfView(CustomerApiView):
    api_area = Area.BILLING

    @extend_schema(responses={(200, "application/pdf"): OpenApiTypes.BINARY, **ERRORS}, tags=["billing"])
    def get(self, request, invoice_id: int):
        """The invoice as PDF (the same document as the page's)."""
        from billing.views import pdf_response  # the page's renderer: one invoice layout

        invoice = billing_selectors.invoice_get(customer=self.customer, invoice_id=invoice_id)
        return pdf_response(request._request, "billing/invoice_pdf.html", {"invoice": invoice}, f"invoice-{invoice.number}.pdf")


class InvoicePayView(CustomerApiView):
    api_area = Area.BILLING

    @extend_schema(request=None, parameters=[IDEMPOTENCY_HEADER],
                   responses={200: serializers.InvoiceDetailSerializer, **ERRORS}, tags=["billing"])
    @idempotent
    def post(self, request, invoice_id: int):
        """Pay the whole invoice from the balance. Refused (400) if the balance does not cover it."""
        invoice = billing_selectors.invoice_get(customer=self.customer, invoice_id=invoice_id)
        invoice_payment_gate_check(invoice)
        if not invoice_pay_from_balance(invoice=invoice, actor=request.user):
            raise ValidationError(_("Your balance does not cover this invoice."), code="insufficient_balance")
        invoice = billing_selectors.invoice_get(customer=self.customer, invoice_id=invoice_id)
        return Response(serializers.InvoiceDetailSerializer(invoice).data)


class PaymentListView(CustomerApiView):
    api_area = Area.BILLING
    serializer_class = serializers.PaymentSerializer

    @extend_schema(parameters=[OpenApiParameter("limit", int)],
                   responses={200: serializers.PaymentSerializer(many=True), **ERRORS}, tags=["billing"])
    def get(self, request):
        page = self.paginate_queryset(billing_selectors.payments_for(self.customer))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class PaymentDetailView(CustomerApiView):
    api_area = Area.BILLING

    @extend_schema(responses={200: serializers.PaymentSerializer, **ERRORS}, tags=["billing"])
    def get(self, request, payment_id: int):
        payment = billing_selectors.payment_get(customer=self.customer, payment_id=payment_id)
        return Response(serializers.PaymentSerializer(payment).data)


# --- tickets ---------------------------------------------------------------------------------------

TICKET_CREATE_REQUEST = inline_serializer("TicketCreateRequest", {
    "department": s.IntegerField(), "subject": s.CharField(max_length=200),
    "priority": s.ChoiceField(choices=Ticket.Priority.choices, required=False), "body": s.CharField(),
    "related_order": s.IntegerField(required=False),
    "attachments": s.ListField(child=s.FileField(), required=False, help_text="multipart/form-data only"),
})


class DepartmentListView(CustomerApiView):
    api_area = Area.TICKETS
    pagination_class = None

    @extend_schema(responses={200: serializers.DepartmentSerializer(many=True), **ERRORS}, tags=["tickets"])
    def get(self, request):
        """Departments that accept new tickets."""
        return Response(serializers.DepartmentSerializer(ticket_selectors.departments_open(), many=True).data)


class TicketListView(CustomerApiView):
    api_area = Area.TICKETS
    serializer_class = serializers.TicketSerializer

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=list(ticket_selectors.STATUS_FILTERS)),
                               OpenApiParameter("q", str, description="Search by subject or number."),
                               OpenApiParameter("limit", int)],
                   responses={200: serializers.TicketSerializer(many=True), **ERRORS}, tags=["tickets"])
    def get(self, request):
        """Tickets, newest first (open ones unless ?status=closed or all)."""
        status_filter = request.query_params.get("status", "open")
        if status_filter not in ticket_selectors.STATUS_FILTERS:
            status_filter = "open"
        tickets = ticket_selectors.tickets_for(customer=self.customer, status=status_filter,
                                               query=request.query_params.get("q", "")[:100])
        page = self.paginate_queryset(tickets)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request={"application/json": TICKET_CREATE_REQUEST, "multipart/form-data": TICKET_CREATE_REQUEST},
                   parameters=[IDEMPOTENCY_HEADER], responses={201: serializers.TicketDetailSerializer, **ERRORS}, tags=["tickets"])
    @idempotent
    def post(self, request):
        """Open a ticket (attachments with multipart/form-data, the same checks as the page)."""
        customer = self.customer
        data = _form_data(request)
        data.setdefault("priority", Ticket.Priority.NORMAL)  # the page's initial choice
        form = ticket_forms.TicketCreateForm(data, request.FILES, departments=ticket_selectors.departments_open(),
                                             orders=ticket_selectors.services_for_ticket(customer=customer))
        if not form.is_valid():
            raise form_errors(form)
        data = form.cleaned_data
        ticket = ticket_services.ticket_create(
            customer=customer, user=request.user, department=data["department"], subject=data["subject"],
            priority=data["priority"], body=data["body"], files=data["attachments"], related_order=data["related_order"])
        ticket = ticket_selectors.ticket_get(customer=customer, ticket_id=ticket.pk)
        return Response(serializers.TicketDetailSerializer(ticket).data, status=status.HTTP_201_CREATED)


class TicketDetailView(CustomerApiView):
    api_area = Area.TICKETS

    @extend_schema(responses={200: serializers.TicketDetailSerializer, **ERRORS}, tags=["tickets"])
    def get(self, request, ticket_id: int):
        """The ticket with its conversation (never staff's internal notes). Reading it does not mark it seen."""
        ticket = ticket_selectors.ticket_get(customer=self.customer, ticket_id=ticket_id)
        return Response(serializers.TicketDetailSerializer(ticket).data)


REPLY_REQUEST = inline_serializer("TicketReplyRequest", {
    "body": s.CharField(), "attachments": s.ListField(child=s.FileField(), required=False, help_text="multipart/form-data only")})


class TicketReplyView(CustomerApiView):
    api_area = Area.TICKETS

    @extend_schema(request={"application/json": REPLY_REQUEST, "multipart/form-data": REPLY_REQUEST},
                   parameters=[IDEMPOTENCY_HEADER], responses={201: serializers.MessageSerializer, **ERRORS}, tags=["tickets"])
    @idempotent
    def post(self, request, ticket_id: int):
        ticket = ticket_selectors.ticket_get(customer=self.customer, ticket_id=ticket_id)
        form = ticket_forms.ReplyForm(_form_data(request), request.FILES)
        if not form.is_valid():
            raise form_errors(form)
        message = ticket_services.message_post_customer(ticket=ticket, user=request.user, body=form.cleaned_data["body"],
                                                        files=form.cleaned_data["attachments"])
        message = ticket_selectors.ticket_thread_for_customer(ticket=ticket).get(pk=message.pk)
        return Response(serializers.MessageSerializer(message).data, status=status.HTTP_201_CREATED)


class AttachmentDownloadView(CustomerApiView):
    api_area = Area.TICKETS

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, **ERRORS}, tags=["tickets"])
    def get(self, request, attachment_id: int):
        """The file, always as a download (the same response as the page's)."""
        return attachment_response(ticket_selectors.attachment_get_for_customer(customer=self.customer, attachment_id=attachment_id))


# --- notifications ---------------------------------------------------------------------------------

class NotificationListView(CustomerApiView):
    api_area = Area.ACCOUNT
    serializer_class = serializers.NotificationSerializer

    @extend_schema(parameters=[OpenApiParameter("unread", bool), OpenApiParameter("limit", int)],
                   responses={200: serializers.NotificationSerializer(many=True), **ERRORS}, tags=["notifications"])
    def get(self, request):
        notifications = notification_selectors.inbox_for(self.customer, user=request.user)  # the user's role decides what they see
        if request.query_params.get("unread") in ("1", "true"):
            notifications = notifications.filter(read_at__isnull=True)
        page = self.paginate_queryset(notifications)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class NotificationDetailView(CustomerApiView):
    api_area = Area.ACCOUNT

    @extend_schema(responses={200: serializers.NotificationDetailSerializer, **ERRORS}, tags=["notifications"])
    def get(self, request, notification_id: int):
        notification = notification_selectors.notification_get(customer=self.customer, user=request.user, notification_id=notification_id)
        return Response(serializers.NotificationDetailSerializer(notification).data)


class NotificationReadView(CustomerApiView):
    api_area = Area.ACCOUNT
    write_access = READ  # the inbox's own read marker, open to every role: no write scope needed
    audited = False  # like reading, not a change to the account

    @extend_schema(request=None, responses={200: serializers.NotificationDetailSerializer, **ERRORS}, tags=["notifications"])
    def post(self, request, notification_id: int):
        notification = notification_services.notification_mark_read(customer=self.customer, user=request.user, notification_id=notification_id)
        return Response(serializers.NotificationDetailSerializer(notification).data)
