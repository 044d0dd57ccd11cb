import uuid
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from types import SimpleNamespace

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import get_language, gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.client_ip import client_ip
from accounts.roles import Area, acting_customer, customer_view
from core.form_fields import as_field
from core.keyset import Cursor

from . import hooks, selectors
from .forms import CurrencyChangeForm, DocumentFilterForm, InvoicePayerForm, PayerForm, TopUpForm, invoice_payer_choices
from .models import Invoice, Payer, Payment
from .money import format_money
from .rates import RateTable
from .services import (
    contracts as contract_services, currency as currency_services, invoices as invoice_services,
    payers as payer_services,
)
from .services.errors import PaymentBlocked, blockers_need_profile
from .templatetags.billing_tags import sort_link

PAGE_SIZE = 20


def _page(request, items, count: int | None = None):
    """A page of `items`; `count` when the caller can count them more cheaply than `items.count()`."""
    paginator = Paginator(items, PAGE_SIZE)
    if count is not None:
        paginator.count = count  # a cached_property: Paginator then never counts `items`
    return paginator.get_page(request.GET.get("page"))


@lru_cache(maxsize=64)
def _topup_fields(language: str | None, codes: tuple[str, ...], currency: str) -> dict:
    """The unbound top-up form's amount and currency fields (HTML), made once per language, enabled
    currencies and preselected currency (all they depend on; Django's widgets cost ~0.8 ms per request)."""
    return _topup_field_html(TopUpForm(currencies=[SimpleNamespace(code=code) for code in codes],
                                       initial={"currency": currency}))


def _topup_field_html(form: TopUpForm) -> dict:
    return {"amount": as_field(form["amount"]), "currency": as_field(form["currency"]),
            "request_key": str(form["request_key"]), "errors": form.non_field_errors()}


def _unbound_topup_fields(currencies, currency: str) -> dict:
    """The cached fields with a new request key (the form's hidden input, as Django writes it)."""
    key_input = format_html('<input type="hidden" name="request_key" value="{}" id="id_request_key">', uuid.uuid4().hex)
    return {**_topup_fields(get_language(), tuple(c.code for c in currencies), currency), "request_key": key_input}


def _balance_context(request, customer, form=None):
    direction = request.GET.get("direction", "all")
    direction = direction if direction in selectors.MOVEMENT_DIRECTIONS else "all"
    currencies = selectors.enabled_currencies()
    accounts = selectors.customer_accounts(customer)  # the balance and the history's accounts in one query
    balance = selectors.balance_in(accounts, customer.currency)
    table = RateTable(currencies)
    return {
        "customer": customer,
        "balance": balance,
        "equivalents": selectors.equivalents(balance, customer.currency, currencies),
        "stale_codes": [c.code for c in currencies if table.stale(c.code)],
        "form": form,  # bound, with errors; None on a plain visit
        "topup_fields": _topup_field_html(form) if form is not None else _unbound_topup_fields(currencies, customer.currency),
        "movements": selectors.balance_history(customer=customer, cursor=Cursor.from_query(request.GET), size=PAGE_SIZE,
                                               direction=direction, query=request.GET, accounts=accounts),
        "direction": direction,
    }


@customer_view(Area.BILLING)
@require_GET
def balance(request):
    return render(request, "billing/balance.html", _balance_context(request, acting_customer(request)))


@customer_view(Area.BILLING)
@require_GET
def topup_preview(request):
    """htmx partial: the entered amount in every other enabled currency at the current rate."""
    currencies = selectors.enabled_currencies()
    form = TopUpForm(request.GET, currencies=currencies)
    rows, error = [], ""
    if form.is_valid():
        rows = selectors.equivalents(form.cleaned_data["amount"], form.cleaned_data["currency"], currencies)
    elif request.GET.get("amount", "").strip():
        error = " ".join(msg for errors in form.errors.values() for msg in errors)
    return render(request, "billing/_topup_preview.html", {"rows": rows, "error": error})


@customer_view(Area.BILLING)
@require_POST
def topup(request):
    customer = acting_customer(request)
    form = TopUpForm(request.POST, currencies=selectors.enabled_currencies())
    if not form.is_valid():
        return render(request, "billing/balance.html", _balance_context(request, customer, form), status=400)
    invoice = invoice_services.invoice_topup_create(customer=customer, amount=form.cleaned_data["amount"], currency=form.cleaned_data["currency"],
                                                    request_key=form.cleaned_data["request_key"])
    messages.success(request, _("Invoice %(number)s for your top-up is ready to pay.") % {"number": invoice.number})
    return redirect("billing:invoice_detail", invoice_id=invoice.pk)


@customer_view(Area.BILLING)
@require_http_methods(["GET", "POST"])
def currency_change(request):
    customer = acting_customer(request)
    currencies = selectors.enabled_currencies()
    form = CurrencyChangeForm(request.POST or None, currencies=currencies, current=customer.currency)
    if request.method == "POST" and form.is_valid():
        currency = form.cleaned_data["currency"]
        try:
            if request.POST.get("confirm") == "1":
                try:
                    expected = Decimal(request.POST.get("rate", ""))
                    if not expected.is_finite():  # NaN/sNaN/Infinity: sNaN even raises on comparison
                        raise InvalidOperation
                except InvalidOperation:
                    raise ValidationError(_("The exchange rate has changed. Review the new amount and confirm again."))
                currency_services.account_currency_change(customer=customer, currency=currency, expected_rate=expected, actor=request.user)
                messages.success(request, _("Your account currency is now %(code)s.") % {"code": currency})
                return redirect("billing:balance")
            preview = currency_services.account_currency_change_preview(customer=customer, currency=currency)
        except ValidationError as exc:
            form.add_error(None, exc.messages[0])
        else:
            return render(request, "billing/currency_confirm.html", {"preview": preview, "form": form})
    return render(request, "billing/currency_change.html", {"form": form, "customer": customer})


@customer_view(Area.BILLING)
@require_GET
def invoice_list(request):
    customer = acting_customer(request)
    status = request.GET.get("status", "all")
    if status not in selectors.INVOICE_FILTERS:
        status = "all"
    sort = request.GET.get("sort", "-date")
    search = request.GET.get("q", "")[:100]
    if search.strip():
        page = _page(request, selectors.invoice_list(customer=customer, status=status, sort=sort, search=search)
                     .values(*selectors.INVOICE_ROW_FIELDS))
    else:
        rows, count = selectors.invoice_rows(customer=customer, status=status, sort=sort)
        page = _page(request, rows, count=count)
    return render(request, "billing/invoice_list.html", {"page": page, "status": status, "sort": sort, "q": search,
                                                         "kind_labels": {value: str(label) for value, label in Invoice.Kind.choices},
                                                         "open_statuses": Invoice.OPEN_STATUSES,
                                                         "sort_links": {field: sort_link({"request": request}, field)
                                                                        for field in ("number", "date", "total", "status")}})


@customer_view(Area.BILLING)
@require_GET
def invoice_detail(request, invoice_id):
    customer = acting_customer(request)
    invoice = selectors.invoice_get(customer=customer, invoice_id=invoice_id, lines=False)
    # invoice_get found it among this customer's invoices: the payment gate and the payer choices
    # read the one loaded customer (and its owner) instead of loading both a second time.
    invoice.customer = customer
    # One query: the printed fields of the lines, payments and credit notes as dicts, and the balance.
    lines, payments, credit_notes, balance = selectors.invoice_page_rows(invoice, customer)
    context = {"invoice": invoice, "balance": balance, "customer": customer,
               "lines": lines, "payments": payments, "credit_notes": credit_notes}
    if invoice.is_open:
        context["blockers"] = selectors.invoice_payment_blockers(invoice)
        context["profile_incomplete"] = blockers_need_profile(context["blockers"])
        if invoice.status == Invoice.Status.UNPAID and not invoice.amount_paid:
            payers = selectors.payer_choices(customer)
            current = invoice.payer_id or next(p.pk for p in payers if p.is_profile)
            context["payer_select"] = _payer_select(get_language(), tuple(invoice_payer_choices(payers)), current)
        context["payment_panels"] = hooks.invoice_payment_panels(request, invoice)
        if invoice.kind != Invoice.Kind.ADVANCE:
            available = selectors.balance_in_currency(balance, customer.currency, invoice.currency)
            context["available"] = available
            context["covers"] = available is not None and available >= invoice.amount_due
            if available is not None and 0 < available < invoice.amount_due:
                context["difference"] = invoice.amount_due - available
    return render(request, "billing/invoice_detail.html", context)


@lru_cache(maxsize=256)
def _payer_select(language: str | None, choices: tuple[tuple[int, str], ...], current: int) -> str:
    """The unbound payer form's select (HTML), made once per language, choices and chosen payer (all it
    depends on; Django's widget costs ~0.3 ms per request)."""
    return str(InvoicePayerForm(payers=(), choices=list(choices), initial={"payer": current})["payer"])


def _invoice_for_post(request, invoice_id):
    customer = acting_customer(request)
    return customer, selectors.invoice_get(customer=customer, invoice_id=invoice_id)


def _gate(request, customer, invoice) -> bool:
    try:
        payer_services.invoice_payment_gate_check(invoice)
    except PaymentBlocked as exc:
        messages.error(request, exc.messages[0])
        return False
    return True


@customer_view(Area.BILLING)
@require_POST
def invoice_pay_balance(request, invoice_id):
    customer, invoice = _invoice_for_post(request, invoice_id)
    if _gate(request, customer, invoice):
        if invoice_services.invoice_pay_from_balance(invoice=invoice, actor=request.user):
            messages.success(request, _("Invoice %(number)s is paid from your balance.") % {"number": invoice.number})
        else:
            messages.error(request, _("Your balance does not cover this invoice."))
    return redirect("billing:invoice_detail", invoice_id=invoice.pk)


@customer_view(Area.BILLING)
@require_POST
def invoice_apply_balance(request, invoice_id):
    customer, invoice = _invoice_for_post(request, invoice_id)
    if _gate(request, customer, invoice):
        try:
            applied = invoice_services.invoice_apply_balance(invoice=invoice, actor=request.user)
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
        else:
            messages.success(request, _("%(amount)s from your balance was applied to invoice %(number)s.")
                             % {"amount": format_money(applied, invoice.currency), "number": invoice.number})
    return redirect("billing:invoice_detail", invoice_id=invoice.pk)


@customer_view(Area.BILLING)
@require_POST
def invoice_topup_difference(request, invoice_id):
    customer, invoice = _invoice_for_post(request, invoice_id)
    if not invoice.is_open or invoice.kind == Invoice.Kind.ADVANCE:
        raise Http404
    advance = invoice_services.invoice_topup_difference_create(customer=customer, invoice=invoice)
    if advance is None:
        messages.info(request, _("Your balance already covers this invoice."))
        return redirect("billing:invoice_detail", invoice_id=invoice.pk)
    messages.success(request, _("Pay invoice %(advance)s; invoice %(number)s is then paid from your balance automatically.")
                     % {"advance": advance.number, "number": invoice.number})
    return redirect("billing:invoice_detail", invoice_id=advance.pk)


@customer_view(Area.BILLING)
@require_POST
def invoice_cancel(request, invoice_id):
    customer, invoice = _invoice_for_post(request, invoice_id)
    if invoice.kind != Invoice.Kind.ADVANCE:
        raise Http404  # service invoices are cancelled with their order
    try:
        invoice_services.invoice_cancel(invoice=invoice, reason=_("Cancelled by the customer"), actor=request.user)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, _("Invoice %(number)s is cancelled.") % {"number": invoice.number})
    return redirect("billing:invoices")


def pdf_response(request, template: str, context: dict, filename: str) -> HttpResponse:
    from weasyprint import HTML  # heavy import, only for PDFs

    context = {"seller": settings.BILLING_SELLER_DETAILS, "seller_vat_id": settings.BILLING_SELLER_VAT_ID,
               "bank": selectors.bank_account(),
               "PORTAL_NAME": settings.PORTAL_NAME, **context}
    html = render_to_string(template, context, request=request)
    response = HttpResponse(HTML(string=html, base_url=request.build_absolute_uri("/")).write_pdf(), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


@customer_view(Area.BILLING)
@require_GET
def invoice_pdf(request, invoice_id):
    invoice = selectors.invoice_get(customer=acting_customer(request), invoice_id=invoice_id)
    return pdf_response(request, "billing/invoice_pdf.html", {"invoice": invoice}, f"invoice-{invoice.number}.pdf")


@customer_view(Area.BILLING)
@require_POST
def invoice_payer(request, invoice_id):
    """Choose who the invoice is made out to (before paying): re-snapshots the details and the tax."""
    customer, invoice = _invoice_for_post(request, invoice_id)
    form = InvoicePayerForm(request.POST, payers=selectors.payer_choices(customer))
    if not form.is_valid():
        messages.error(request, _("Choose one of your payers."))
    else:
        try:
            invoice = invoice_services.invoice_payer_choose(invoice=invoice, payer=form.cleaned_data["payer"], actor=request.user,
                                                            ip=client_ip(request))
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
        else:
            messages.success(request, _("Invoice %(number)s is now made out to %(payer)s.")
                             % {"number": invoice.number, "payer": invoice.payer_company or invoice.payer_name})
    return redirect("billing:invoice_detail", invoice_id=invoice.pk)


@customer_view(Area.BILLING)
@require_GET
def payment_list(request):
    customer = acting_customer(request)
    page = _page(request, selectors.payment_rows(customer), count=selectors.payment_count(customer))
    return render(request, "billing/payment_list.html", {"page": page, "in_progress": hooks.payments_in_progress(customer),
                                                         "status_labels": {value: str(label) for value, label in Payment.Status.choices}})


@customer_view(Area.BILLING)
@require_GET
def payment_detail(request, payment_id):
    payment = selectors.payment_get(customer=acting_customer(request), payment_id=payment_id)
    return render(request, "billing/payment_detail.html", {"payment": payment})


@customer_view(Area.BILLING)
@require_GET
def expense_list(request):
    page = selectors.expense_history(customer=acting_customer(request), cursor=Cursor.from_query(request.GET), size=PAGE_SIZE,
                                     query=request.GET)
    return render(request, "billing/expense_list.html", {"page": page})


# --- payers ------------------------------------------------------------------------------------

@customer_view(Area.BILLING)
@require_GET
def payer_list(request):
    customer = acting_customer(request)
    show_archived = request.GET.get("archived") == "1"
    payers = selectors.payers_archived(customer) if show_archived else selectors.payer_choices(customer)
    rows = [{"payer": p, "details": selectors.payer_details(p)} for p in payers]
    return render(request, "billing/payer_list.html", {"rows": rows, "show_archived": show_archived, "customer": customer})


def _payer_form_data(payer: Payer) -> dict:
    return {field: getattr(payer, field) for field in payer_services.PAYER_FIELDS}


@customer_view(Area.BILLING)
@require_http_methods(["GET", "POST"])
def payer_create(request):
    customer = acting_customer(request)
    form = PayerForm(request.POST or None, initial={"payer_type": Payer.Type.COMPANY, "country": customer.country})
    if request.method == "POST" and form.is_valid():
        try:
            payer = payer_services.payer_create(customer=customer, data=form.cleaned_data, actor=request.user, ip=client_ip(request))
        except ValidationError as exc:
            form.add_error(None, exc.messages[0])
        else:
            if payer.verification_status == Payer.Verification.PENDING:
                messages.success(request, _("Payer %(name)s is saved and awaits verification by our staff.") % {"name": payer.company_name})
            else:
                messages.success(request, _("Payer %(name)s is saved.") % {"name": payer.name})
            return redirect(_safe_next(request) or "billing:payers")
    return render(request, "billing/payer_form.html", {"form": form, "next": _safe_next(request)},
                  status=400 if form.is_bound else 200)


def _safe_next(request) -> str:
    """The local page to return to after adding a payer (e.g. the invoice being paid), or ""."""
    from django.utils.http import url_has_allowed_host_and_scheme

    target = request.POST.get("next") or request.GET.get("next") or ""
    ok = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure())
    return target if target.startswith("/") and ok else ""


@customer_view(Area.BILLING)
@require_http_methods(["GET", "POST"])
def payer_edit(request, payer_id):
    customer = acting_customer(request)
    payer = selectors.payer_get(customer=customer, payer_id=payer_id)
    if payer.is_profile:
        return redirect("accounts:settings")
    form = PayerForm(request.POST or None, initial=_payer_form_data(payer))
    if request.method == "POST" and form.is_valid():
        try:
            payer = payer_services.payer_update(payer=payer, data=form.cleaned_data, actor=request.user, ip=client_ip(request))
        except ValidationError as exc:
            form.add_error(None, exc.messages[0])
        else:
            if payer.verification_status == Payer.Verification.PENDING:
                messages.success(request, _("Changes saved. The company details are sent to our staff for verification again."))
            else:
                messages.success(request, _("Changes saved."))
            return redirect("billing:payers")
    return render(request, "billing/payer_form.html", {"form": form, "payer": payer}, status=400 if form.is_bound else 200)


@customer_view(Area.BILLING)
@require_POST
def payer_delete(request, payer_id):
    payer = selectors.payer_get(customer=acting_customer(request), payer_id=payer_id)
    try:
        deleted = payer_services.payer_delete(payer=payer, actor=request.user, ip=client_ip(request))
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        if deleted:
            messages.success(request, _("The payer is deleted."))
        else:
            messages.info(request, _("Documents refer to this payer, so it is archived instead of deleted."))
    return redirect("billing:payers")


# --- documents ---------------------------------------------------------------------------------

@lru_cache(maxsize=16)
def _document_filter_fields(language: str | None) -> dict:
    """The unbound filter form's widgets (HTML), made once per language: they depend on nothing else,
    and Django's widget templates cost ~0.6 ms per request for the three."""
    form = DocumentFilterForm()
    return {name: mark_safe(str(form[name])) for name in form.fields}


@customer_view(Area.BILLING)
@require_GET
def documents(request):
    customer = acting_customer(request)
    form = DocumentFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    rows = selectors.documents_for(customer=customer, doc_type=filters.get("type", ""),
                                   date_from=filters.get("date_from"), date_to=filters.get("date_to"))
    version, accepted = selectors.contract_current_with_acceptances(customer)
    payers = selectors.payer_choices(customer)
    return render(request, "billing/documents.html", {
        "form": form, "page": _page(request, rows), "contract": version,
        "filter_fields": form if form.is_bound else _document_filter_fields(get_language()),
        "contract_rows": [{**row, "details": selectors.payer_details(row["payer"])}
                          for row in selectors.contract_status(customer, version, payers, accepted)],
    })


@customer_view(Area.BILLING)
@require_GET
def invoice_list_csv(request):
    """The customer's own invoices as CSV (every invoice, oldest first)."""
    from . import exports

    header, rows = exports.customer_invoice_rows(acting_customer(request))
    response = HttpResponse(exports.to_csv(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="invoices.csv"'
    return response


@customer_view(Area.BILLING)
@require_GET
def credit_note_pdf(request, credit_note_id):
    note = selectors.credit_note_get(customer=acting_customer(request), credit_note_id=credit_note_id)
    return pdf_response(request, "billing/credit_note_pdf.html",
                         {"note": note, "invoice": note.invoice, "net": note.amount - note.tax_amount},
                         f"credit-note-{note.number}.pdf")


@customer_view(Area.BILLING)
@require_GET
def act_pdf(request, act_id):
    act = selectors.act_get(customer=acting_customer(request), act_id=act_id)
    return pdf_response(request, "billing/act_pdf.html", {"act": act}, f"act-{act.number}.pdf")


@customer_view(Area.BILLING)
@require_GET
def contract_pdf(request, payer_id):
    """The current agreement made out to one of the customer's payers (accepted or not yet)."""
    customer = acting_customer(request)
    payer = selectors.payer_get(customer=customer, payer_id=payer_id, include_archived=True)
    version = selectors.contract_version_current()
    if version is None:
        raise Http404
    acceptance = payer.contract_acceptances.filter(version=version).first()
    details = acceptance.payer_details if acceptance else selectors.payer_details(payer).as_dict()
    return pdf_response(request, "billing/contract_pdf.html", {"version": version, "payer": details, "acceptance": acceptance,
                                                                "customer": customer}, f"contract-v{version.version}-{payer.pk}.pdf")


@customer_view(Area.BILLING)
@require_GET
def contract_acceptance_pdf(request, acceptance_id):
    customer = acting_customer(request)
    acceptance = selectors.contract_acceptance_get(customer=customer, acceptance_id=acceptance_id)
    return pdf_response(request, "billing/contract_pdf.html", {"version": acceptance.version, "payer": acceptance.payer_details,
                                                                "acceptance": acceptance, "customer": customer},
                         f"contract-v{acceptance.version.version}-{acceptance.payer_id}.pdf")


@customer_view(Area.BILLING)
@require_POST
def contract_accept(request, payer_id):
    customer = acting_customer(request)
    payer = selectors.payer_get(customer=customer, payer_id=payer_id)
    version = selectors.contract_version_current()
    if version is None or str(version.pk) != request.POST.get("version"):
        messages.error(request, _("The agreement has a new version. Read it and accept again."))
        return redirect("billing:documents")
    contract_services.contract_accept(payer=payer, version=version, user=request.user, ip=client_ip(request))
    messages.success(request, _("You accepted %(title)s (version %(version)s) for %(payer)s.")
                     % {"title": version.title, "version": version.version, "payer": selectors.payer_details(payer).label})
    return redirect("billing:documents")
