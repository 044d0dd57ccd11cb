"""Output shapes of /api/v1/. Amounts are decimal strings with their currency, never floats."""
from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.money import quantize
from billing.models import Invoice, InvoiceLine, Payment
from notifications.models import Notification
from orders.models import Order, Plan
from tickets.models import Attachment, Department, Message, Ticket


class CurrencyAmounts:
    """Amounts are stored with extra places; shown, like on the pages, in the currency's minor unit
    (they were quantized to it when posted, so this only drops trailing zeros)."""

    amount_fields: tuple[str, ...] = ()
    currency_path = "currency"

    def to_representation(self, instance):
        data = super().to_representation(instance)
        currency = instance
        for part in self.currency_path.split("."):
            currency = currency[part] if isinstance(currency, dict) else getattr(currency, part)
        for name in self.amount_fields:
            if data.get(name) is not None:
                data[name] = str(quantize(Decimal(data[name]), currency))
        return data


class ErrorSerializer(serializers.Serializer):
    """`{"error": {...}}`: every non-2xx answer."""

    class ErrorBody(serializers.Serializer):
        type = serializers.CharField()
        code = serializers.CharField()
        message = serializers.CharField()
        fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)

    error = ErrorBody()


class AccountSerializer(serializers.Serializer):
    client_id = serializers.IntegerField(source="customer.pk")
    user = serializers.CharField(source="user.username")
    role = serializers.CharField(source="user.role")
    email = serializers.EmailField(source="user.email")
    language = serializers.CharField(source="customer.language")
    timezone = serializers.CharField(source="customer.timezone")
    account_currency = serializers.CharField(source="customer.currency")
    key_scopes = serializers.ListField(child=serializers.CharField())


class MoneySerializer(CurrencyAmounts, serializers.Serializer):
    amount_fields = ("amount",)

    amount = serializers.DecimalField(max_digits=None, decimal_places=None)
    currency = serializers.CharField()


class BalanceSerializer(serializers.Serializer):
    balance = MoneySerializer()
    equivalents = MoneySerializer(many=True)


class PlanSerializer(serializers.ModelSerializer):
    class Meta:
        model = Plan
        fields = ["id", "code", "name", "cpu_cores", "ram_gb", "disk_gb", "disk_type"]


class ServiceSerializer(CurrencyAmounts, serializers.ModelSerializer):
    amount_fields = ("price", "addons_price")

    plan = PlanSerializer()
    scheduled_plan = PlanSerializer(allow_null=True)
    auto_renew = serializers.BooleanField(allow_null=True)

    class Meta:
        model = Order
        # `price` is the plan's part of a period, `addons_price` the add-ons' (a renewal charges both).
        fields = ["id", "plan", "status", "period_months", "price", "addons_price", "currency", "ip", "created_at", "paid_at",
                  "activated_at", "expires_at", "current_period", "auto_renew", "cancel_at_period_end", "scheduled_plan"]


class PlanChangeQuoteSerializer(CurrencyAmounts, serializers.Serializer):
    amount_fields = ("new_price", "amount_now")
    currency_path = "order.currency"

    plan = PlanSerializer()
    new_price = serializers.DecimalField(max_digits=None, decimal_places=None)
    currency = serializers.CharField(source="order.currency")
    is_upgrade = serializers.BooleanField()
    amount_now = serializers.DecimalField(max_digits=None, decimal_places=None, source="proration.amount", allow_null=True,
                                          help_text="Pass as expected_amount when changing to this plan (upgrades).")


class ServiceActionSerializer(serializers.Serializer):
    """What a renew/change-plan call did: paid from the balance, waiting for an invoice, or scheduled."""

    service = ServiceSerializer()
    paid = serializers.BooleanField()
    scheduled = serializers.BooleanField()
    invoice_id = serializers.IntegerField(allow_null=True)


class InvoiceLineSerializer(CurrencyAmounts, serializers.ModelSerializer):
    amount_fields = ("unit_price", "amount")
    currency_path = "invoice.currency"

    class Meta:
        model = InvoiceLine
        fields = ["description", "quantity", "unit_price", "amount"]


class InvoiceSerializer(CurrencyAmounts, serializers.ModelSerializer):
    amount_fields = ("subtotal", "tax_amount", "total", "amount_paid", "amount_due")

    amount_due = serializers.DecimalField(max_digits=None, decimal_places=None)

    class Meta:
        model = Invoice
        fields = ["id", "number", "kind", "status", "currency", "subtotal", "tax_percent", "tax_label", "tax_amount",
                  "total", "amount_paid", "amount_due", "reference", "issued_at", "paid_at", "cancelled_at"]


class InvoiceDetailSerializer(InvoiceSerializer):
    lines = InvoiceLineSerializer(many=True)

    class Meta(InvoiceSerializer.Meta):
        fields = [*InvoiceSerializer.Meta.fields, "payer_name", "payer_company", "payer_vat_number", "lines"]


class PaymentSerializer(CurrencyAmounts, serializers.ModelSerializer):
    amount_fields = ("amount",)

    class Meta:
        model = Payment
        fields = ["id", "invoice_id", "method", "gateway", "amount", "currency", "status", "created_at"]


class DepartmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Department
        fields = ["id", "name", "category"]


class TicketSerializer(serializers.ModelSerializer):
    number = serializers.IntegerField(source="pk")
    department = DepartmentSerializer()
    unread = serializers.BooleanField(source="customer_unread")

    class Meta:
        model = Ticket
        fields = ["number", "subject", "department", "priority", "status", "created_at", "last_reply_at",
                  "last_reply_is_staff", "unread", "related_order_id"]


class AttachmentSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="original_name")

    class Meta:
        model = Attachment
        fields = ["id", "name", "content_type", "size"]


class MessageSerializer(serializers.ModelSerializer):
    author = serializers.SerializerMethodField()
    attachments = AttachmentSerializer(many=True)

    class Meta:
        model = Message
        fields = ["id", "author", "is_staff", "body", "created_at", "attachments"]

    def get_author(self, message) -> str:
        # As on the page: staff are shown by first name only.
        if message.author is None:
            return ""
        return message.author.first_name if message.is_staff else (message.author.get_full_name() or message.author.username)


class TicketDetailSerializer(TicketSerializer):
    messages = serializers.SerializerMethodField()

    class Meta(TicketSerializer.Meta):
        fields = [*TicketSerializer.Meta.fields, "messages"]

    @extend_schema_field(MessageSerializer(many=True))
    def get_messages(self, ticket) -> list[dict]:
        from tickets.selectors import ticket_thread_for_customer

        return MessageSerializer(ticket_thread_for_customer(ticket=ticket), many=True).data


class NotificationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = ["id", "kind", "subject", "link", "created_at", "read_at"]


class NotificationDetailSerializer(NotificationSerializer):
    class Meta(NotificationSerializer.Meta):
        fields = [*NotificationSerializer.Meta.fields, "body_text"]
