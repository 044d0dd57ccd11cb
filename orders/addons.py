"""Add-ons (priced configurable options): what a service holds, what they cost, their invoice lines
and the resources they add. Reads and pure helpers; the writes (taking and removing add-ons) are in
the order services.

- A plan offers `PlanAddon`s priced per step, period and currency (`pricing.addon_price`). A service
  holds `OrderAddon`s: steps at the step price fixed when the add-on was first taken, in the order's
  currency; `Order.addons_price` is their sum, so a period costs `price + addons_price`.
- Every invoice that charges an add-on has a line of its own referencing it
  (`<invoice reference>:addon:<plan add-on id>`), and so has its promo-code discount line.
- A renewal snapshots the add-ons it charges (`OrderRenewal.addons`): its invoice lists them, and a
  later change of the add-ons makes the pending renewal stale (re-priced like after a plan change).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.content import localized
from billing.services.invoices import LineInput
from core.compiled import STAND_IN, CompiledQuery

from . import pricing
from .models import RESOURCE_ADDON_KINDS, Order, OrderAddon, OrderRenewal, Plan, PlanAddon, PromoCode

ZERO = Decimal("0")
Kind = PlanAddon.Kind


@dataclass(frozen=True)
class AddonItem:
    """`quantity` steps of `addon` at `unit_price` a step per period."""

    addon: PlanAddon
    quantity: int
    unit_price: Decimal
    price: pricing.Price | None = None  # set when quoted from the catalogue (conversion shown to the customer)

    @property
    def addon_id(self) -> int:
        return self.addon.pk

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity

    @property
    def units(self) -> int:
        return self.addon.step * self.quantity

    @property
    def label(self) -> str:
        return describe(self.addon, self.quantity)


def addon_line_reference(base: str, addon_id: int) -> str:
    return f"{base}:addon:{addon_id}"


def units_label(addon: PlanAddon, quantity: int) -> str:
    """What `quantity` steps add: "4 GB", "2 vCPU", "2 addresses", "× 2" — in the active language."""
    units = addon.step * quantity
    if addon.kind == Kind.CPU:
        return _("%(n)s vCPU") % {"n": units}
    if addon.kind in (Kind.RAM, Kind.DISK):
        return _("%(n)s GB") % {"n": units}
    if addon.kind == Kind.IPV4:
        return ngettext("%(n)s address", "%(n)s addresses", units) % {"n": units}
    return "× %s" % quantity


def quantity_choices(addon: PlanAddon) -> list[tuple[int, str]]:
    """0..max steps for a select; a one-step add-on (backups, a licence) is a no/yes choice."""
    if addon.max_quantity == 1 and not addon.is_resource:
        return [(0, _("No")), (1, _("Yes"))]
    return [(0, _("None"))] + [(n, units_label(addon, n)) for n in range(1, addon.max_quantity + 1)]


def describe(addon: PlanAddon, quantity: int) -> str:
    """"Extra RAM: 4 GB", "Extra IPv4: 2 addresses", "Backups" — in the active language."""
    name = localized(addon, "name")
    if addon.is_resource:
        return _("%(name)s: %(units)s") % {"name": name, "units": units_label(addon, quantity)}
    return name if quantity == 1 else f"{name} × {quantity}"


def plan_addons(plan: Plan) -> list[PlanAddon]:
    """The add-ons a customer may take with `plan`, with their prices (prefetched `addons__prices`
    are used, else two queries)."""
    if "addons" in getattr(plan, "_prefetched_objects_cache", {}):
        return [addon for addon in plan.addons.all() if addon.is_active]
    return list(plan.addons.filter(is_active=True).select_related("plan").prefetch_related("prices")
                .order_by("sort_order", "pk"))


def plan_offers_addons(plan: Plan) -> bool:
    """Whether `plan` has an add-on a customer may take (one EXISTS query; the order page's "Add-ons" card)."""
    if "addons" in getattr(plan, "_prefetched_objects_cache", {}):
        return any(addon.is_active for addon in plan.addons.all())
    return plan.addons.filter(is_active=True).exists()


def quote_items(*, plan: Plan, period_months: int, currency: str, quantities: dict[int, int]) -> list[AddonItem]:
    """The add-ons chosen on the order form, priced in `currency`. Refuses an add-on of another plan,
    a negative, fractional or too large number of steps (0 means not taken)."""
    offered = {addon.pk: addon for addon in plan_addons(plan)}
    items = []
    for addon_id, quantity in sorted(quantities.items()):
        addon = offered.get(addon_id)
        if addon is None:
            raise ValidationError(_("This add-on is not offered with this plan."), code="addon_unknown")
        check_quantity(addon, quantity)
        if quantity == 0:
            continue
        price = pricing.addon_price(addon=addon, period_months=period_months, currency=currency)
        items.append(AddonItem(addon=addon, quantity=quantity, unit_price=price.amount, price=price))
    return items


def check_quantity(addon: PlanAddon, quantity) -> None:
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
        raise ValidationError(_("Choose a whole number of steps of %(addon)s.") % {"addon": localized(addon, "name")},
                              code="addon_quantity")
    if quantity > addon.max_quantity:
        raise ValidationError(_("At most %(max)s of %(addon)s can be taken.") % {
            "max": addon.max_quantity, "addon": localized(addon, "name")}, code="addon_too_many")


def held_items(order: Order) -> list[AddonItem]:
    """The add-ons `order` holds now (prefetched `addons__addon` is used when present)."""
    rows = order.addons.all() if _prefetched(order) else _HELD(order_id=order.pk)
    return [AddonItem(addon=row.addon, quantity=row.quantity, unit_price=row.unit_price) for row in rows]


def _held_query(order_id: int):
    return OrderAddon.objects.filter(order_id=order_id).select_related("addon").order_by("addon__sort_order", "addon_id")


_HELD = CompiledQuery(_held_query, order_id=STAND_IN)  # held_items' query, compiled once (core.compiled)


def _prefetched(order: Order) -> bool:
    return "addons" in getattr(order, "_prefetched_objects_cache", {})


def snapshot(items: list[AddonItem]) -> list[dict]:
    return [{"addon": item.addon_id, "quantity": item.quantity, "unit_price": str(item.unit_price)} for item in items]


def snapshot_total(snapshot_rows: list[dict]) -> Decimal:
    return sum((Decimal(row["unit_price"]) * row["quantity"] for row in snapshot_rows), ZERO)


def renewal_addon_items(renewal: OrderRenewal, plan_addons_by_id: dict[int, PlanAddon] | None = None) -> list[AddonItem]:
    """The add-ons a renewal charges for (its snapshot); one query, or none with `plan_addons_by_id`
    (the renewal job loads a chunk's at once: `plan_addons_of`)."""
    rows = renewal.addons or []
    if not rows:
        return []
    found = plan_addons_by_id if plan_addons_by_id is not None else plan_addons_of([renewal])
    return [AddonItem(addon=found[row["addon"]], quantity=row["quantity"], unit_price=Decimal(row["unit_price"]))
            for row in rows]


def plan_addons_of(renewals) -> dict[int, PlanAddon]:
    ids = {row["addon"] for renewal in renewals for row in (renewal.addons or [])}
    return PlanAddon.objects.in_bulk(list(ids)) if ids else {}


def item_lines(*, order: Order, items: list[AddonItem], reference: str, periods: int, months: int,
               promo: PromoCode | None = None, first_period: int = 1) -> list[LineInput]:
    """A line per add-on for `periods` periods (`months` months in all), then a discount line per
    add-on the promo code covers in those periods; in the customer's language."""
    from . import promo as promo_codes

    lines, discounts = [], []
    with translation.override(order.customer.language):
        for item in items:
            description = _("%(addon)s, order #%(id)s: %(months)s month(s)") % {
                "addon": describe(item.addon, item.quantity), "id": order.pk, "months": months}
            line_reference = addon_line_reference(reference, item.addon_id)
            lines.append(LineInput(description=description, quantity=periods, unit_price=item.amount,
                                   reference=line_reference))
            discount = promo_codes.addon_discount(promo, amount=item.amount, currency=order.currency,
                                                  first_period=first_period, periods=periods)
            if discount:
                discounts.append(promo_codes.addon_discount_line(
                    promo, addon_name=localized(item.addon, "name"), amount=discount,
                    language=order.customer.language, reference=line_reference))
    return lines + discounts


def resource_extras(order: Order) -> dict[str, int]:
    """Units the held add-ons add to the plan: {"cpu": vCPUs, "ram": GB, "disk": GB, "ipv4": addresses}."""
    extras = dict.fromkeys(RESOURCE_ADDON_KINDS, 0)
    for row in OrderAddon.objects.filter(order=order, addon__kind__in=RESOURCE_ADDON_KINDS).select_related("addon"):
        extras[row.addon.kind] += row.addon.step * row.quantity
    return {str(kind): units for kind, units in extras.items()}
