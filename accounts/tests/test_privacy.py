"""Policies (publish → banner → accept), "export my data" and account deletion (anonymize, keep the ledger)."""
import io
import json
import zipfile
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts.models import ActivityEvent, Customer, DataExport, DeletionRequest, PolicyAcceptance, User
from accounts.services.data_export import data_export_build, data_exports_sweep
from accounts.services.deletion import deletion_request_approve, deletion_request_create, deletion_request_reject
from accounts.services.policies import policies_accept, policy_publish, policy_version_create
from accounts.services.profile import user_set_avatar
from accounts.tests.factories import StaffUserFactory, UserFactory
from core.compiled import prepared_sql

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def private_media(tmp_path, settings):
    settings.PRIVATE_MEDIA_ROOT = tmp_path / "private"
    return settings.PRIVATE_MEDIA_ROOT


@pytest.fixture
def enqueued(monkeypatch):
    """Record export tasks instead of publishing to the shared Redis."""
    from accounts import tasks

    calls = []
    monkeypatch.setattr(tasks.data_export_build_task, "apply_async", lambda kwargs, **options: calls.append(kwargs))
    return calls


def publish(kind="privacy", title="Privacy policy", text="We keep your data safe.\n\nSecond paragraph."):
    staff = StaffUserFactory()
    policy = policy_version_create(kind=kind, title=title, text=text, changes="New retention rules",
                                   staff=staff)
    return policy_publish(policy=policy, staff=staff)


# --- policies ---------------------------------------------------------------------------------------------

def test_banner_appears_after_a_new_version_and_disappears_after_acceptance(client):
    user = UserFactory()
    client.force_login(user)
    assert 'data-testid="policy-banner"' not in client.get("/").content.decode()

    first = publish()
    page = client.get("/").content.decode()
    assert 'data-testid="policy-banner"' in page and "Privacy policy" in page
    review = client.get(reverse("accounts:policies_review")).content.decode()
    assert "Second paragraph" in review and "New retention rules" in review
    assert 'data-testid="policy-banner"' not in review  # not on the page that resolves it

    response = client.post(reverse("accounts:policies_accept"), {"policy": [first.pk]}, REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 302
    acceptance = PolicyAcceptance.objects.get(user=user, policy=first)
    assert acceptance.ip == "203.0.113.9" and acceptance.accepted_at is not None
    assert 'data-testid="policy-banner"' not in client.get("/").content.decode()
    activity = client.get(reverse("accounts:activity")).content.decode()
    assert "Policy accepted" in activity and "203.0.113.9" in activity

    second = publish(text="Version two.")  # a new version brings the banner back
    assert second.version == 2
    assert 'data-testid="policy-banner"' in client.get("/").content.decode()


def test_accepting_a_version_that_was_superseded_meanwhile_records_nothing(client):
    user = UserFactory()
    client.force_login(user)
    old = publish()
    publish(text="Newer text")
    response = client.post(reverse("accounts:policies_accept"), {"policy": [old.pk]})
    assert response.status_code == 302 and response.url == reverse("accounts:policies_review")
    assert not PolicyAcceptance.objects.exists()


def test_the_banner_is_per_user_and_costs_one_query(client, django_assert_num_queries):
    owner = UserFactory()
    colleague = UserFactory(customer=owner.customer, role=User.Role.TECHNICAL)
    policy = publish()
    policies_accept(user=owner, policy_ids=[policy.pk])
    client.force_login(colleague)
    assert 'data-testid="policy-banner"' in client.get("/accounts/settings/profile/").content.decode()
    from accounts.context_processors import account
    from accounts.selectors import topbar_policies_pending
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = colleague
    with django_assert_num_queries(1):
        assert [p.pk for p in topbar_policies_pending(request, colleague.customer)] == [policy.pk]
    # The banner reads it through the top bar's values (core.topbar: computed once per page, cached per user).
    assert [p.pk for p in account(request)["policy_updates"]] == [policy.pk]


def test_privacy_page_shows_each_current_version_accepted_or_to_review_in_one_policy_query(client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils.formats import date_format
    from django.utils.timezone import localtime

    owner = UserFactory()
    colleague = UserFactory(customer=owner.customer, role=User.Role.TECHNICAL)
    privacy, old_terms = publish(), publish(kind="terms", title="Terms")
    terms = publish(kind="terms", title="Terms", text="Version two.")
    policies_accept(user=owner, policy_ids=[privacy.pk])
    policies_accept(user=colleague, policy_ids=[terms.pk])  # another login's acceptance is not the owner's
    PolicyAcceptance.objects.create(user=owner, policy=old_terms)  # nor one of an older version
    client.force_login(owner)
    with CaptureQueriesContext(connection) as captured:
        page = client.get("/accounts/settings/privacy/").content.decode()
    privacy_row = page[page.index('data-testid="policy-privacy"'):]
    privacy_row = privacy_row[:privacy_row.index("</li>")]
    terms_row = page[page.index('data-testid="policy-terms"'):]
    terms_row = terms_row[:terms_row.index("</li>")]
    accepted_at = PolicyAcceptance.objects.get(user=owner, policy=privacy).accepted_at
    assert f"Accepted {date_format(localtime(accepted_at), 'DATETIME_FORMAT')}" in privacy_row
    assert "Review and accept" not in privacy_row
    assert "Review and accept" in terms_row and "Accepted" not in terms_row and "version 2 of" in terms_row
    page_queries = [q["sql"] for q in captured.captured_queries if '"accounts_policy' in prepared_sql(q["sql"])]
    assert len(page_queries) == 2  # the banner's pending versions, the page's versions with acceptances (was 3)


def test_published_policy_is_public_and_drafts_are_not():
    from django.test import Client

    staff = StaffUserFactory()
    draft = policy_version_create(kind="terms", title="Terms", text="Draft", staff=staff)
    assert Client().get("/accounts/policies/terms/").status_code == 404
    policy_publish(policy=draft, staff=staff)
    page = Client().get("/accounts/policies/terms/")
    assert page.status_code == 200 and "Draft" in page.content.decode()
    assert Client().get("/accounts/policies/unknown/").status_code == 404


def test_policy_text_is_escaped():
    from django.test import Client

    publish(text="<script>alert(1)</script>")
    body = Client().get("/accounts/policies/privacy/").content.decode()
    assert "<script>alert(1)" not in body and "&lt;script&gt;" in body


# --- export my data -------------------------------------------------------------------------------------------

def make_customer_data(user, marker: str):
    """An invoice and ledger rows (a real top-up), a ticket and a notification carrying `marker`."""
    from billing.services.invoices import LineInput, invoice_issue
    from billing.services.payments import payment_record
    from billing.tests.factories import make_currencies
    from notifications.services import notify
    from tickets.models import Department
    from tickets.tests.factories import TicketFactory

    make_currencies()
    Department.objects.get_or_create(slug="support", defaults={"name": "Technical support", "category": "support",
                                                               "email": "support@example.com"})
    payment_record(idempotency_key=f"test:{marker}", customer=user.customer, amount=Decimal("25.00"),
                   currency="EUR", method="bank_transfer", memo=marker)
    invoice = invoice_issue(customer=user.customer, kind="advance",
                            lines=[LineInput(description=f"Top-up {marker}", quantity=1,
                                             unit_price=Decimal("5.00"))])
    TicketFactory(created_by=user, subject=f"Ticket {marker}")
    notify(customer=user.customer, kind="security_change", context={"change": marker, "username": user.username,
                                                                     "ip": "", "when": "now"})
    return invoice


def read_zip(response) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def test_export_contains_only_the_owners_data_and_the_link_404s_for_anyone_else_and_after_expiry(
        client, enqueued, django_capture_on_commit_callbacks):
    owner = UserFactory(first_name="Alice")
    other = UserFactory(first_name="Mallory")
    mine = make_customer_data(owner, "MINE-123")
    theirs = make_customer_data(other, "THEIRS-456")
    client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(reverse("accounts:data_export_request")).status_code == 302
    export = DataExport.objects.get(customer=owner.customer)
    assert export.status == DataExport.Status.PENDING and enqueued == [{"export_id": export.pk}]

    data_export_build(export_id=export.pk)  # what the worker runs
    export.refresh_from_db()
    assert export.status == DataExport.Status.READY and export.size > 0
    assert export.expires_at == export.finished_at + timedelta(hours=48)

    url = reverse("accounts:data_export_download", args=[export.pk])
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = read_zip(response)
    names = set(archive.namelist())
    for section in ("profile", "users", "orders", "invoices", "ledger", "payments", "payment_methods", "tickets",
                    "notifications"):
        assert {f"{section}.json", f"{section}.csv"} <= names, section
    everything = "".join(archive.read(name).decode("utf-8-sig") for name in names)
    assert "MINE-123" in everything and mine.number in everything and "Alice" in everything
    assert "THEIRS-456" not in everything and theirs.number not in everything and "Mallory" not in everything
    invoices = json.loads(archive.read("invoices.json"))
    assert [row["number"] for row in invoices] == [mine.number] and invoices[0]["total"] == "5.00"
    ledger = json.loads(archive.read("ledger.json"))
    assert ledger and all(row["currency"] == "EUR" for row in ledger)

    # Anyone else: another customer's owner, a trusted user of the same customer, anonymous → 404 / login.
    client.force_login(other)
    assert client.get(url).status_code == 404
    client.force_login(UserFactory(customer=owner.customer, role=User.Role.FINANCE))
    assert client.get(url).status_code == 404
    client.logout()
    assert client.get(url).status_code == 302

    client.force_login(owner)
    DataExport.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(url).status_code == 404
    path = export.file.path
    assert data_exports_sweep()["expired"] == 1
    export.refresh_from_db()
    assert export.status == DataExport.Status.EXPIRED and not export.file


def test_export_csv_makes_typed_text_inert_for_spreadsheets(client, enqueued):
    import csv

    owner = UserFactory(first_name="Alice")
    UserFactory(customer=owner.customer, role=User.Role.TECHNICAL, first_name='=HYPERLINK("https://evil.example")',
                last_name="@SUM(A1)")
    UserFactory(customer=owner.customer, role=User.Role.FINANCE, first_name="+1", last_name="-2")
    client.force_login(owner)
    client.post(reverse("accounts:data_export_request"))
    data_export_build(export_id=DataExport.objects.get(customer=owner.customer).pk)
    archive = read_zip(client.get(reverse("accounts:data_export_download",
                                          args=[DataExport.objects.get(customer=owner.customer).pk])))
    rows = list(csv.DictReader(io.StringIO(archive.read("users.csv").decode("utf-8-sig"))))
    cells = [value for row in rows for value in row.values() if value]
    assert not [cell for cell in cells if cell[0] in "=+-@\t\r"]
    assert "'=HYPERLINK(\"https://evil.example\")" in cells and "'@SUM(A1)" in cells and "'+1" in cells
    users = json.loads(archive.read("users.json"))  # JSON keeps the text as typed
    assert '=HYPERLINK("https://evil.example")' in [user["first_name"] for user in users]


def test_a_second_export_request_while_one_is_pending_creates_nothing(client, enqueued):
    owner = UserFactory()
    client.force_login(owner)
    client.post(reverse("accounts:data_export_request"))
    response = client.post(reverse("accounts:data_export_request"), follow=True)
    assert "already being prepared" in response.content.decode()
    assert DataExport.objects.filter(customer=owner.customer).count() == 1


@pytest.fixture
def broker_down():
    """Point the Celery app at a port nothing listens on (the shared Redis itself is never stopped)."""
    import socket

    from portal.celery import app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    original = app.conf.broker_url

    def point(url):
        app.conf.broker_url = url
        app._pool = None  # drop connections made to the previous URL
        app.amqp._producer_pool = None

    point(f"redis://127.0.0.1:{closed_port}/0")
    yield
    point(original)


def test_broker_down_is_not_an_error_and_the_sweeper_builds_the_export(
        client, broker_down, caplog, django_capture_on_commit_callbacks):
    owner = UserFactory()
    client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("accounts:data_export_request"))
    assert response.status_code == 302
    assert "Could not enqueue accounts.tasks.data_export_build_task" in caplog.text  # the enqueue really failed, and was logged
    export = DataExport.objects.get(customer=owner.customer)
    assert export.status == DataExport.Status.PENDING
    assert data_exports_sweep()["built"] == 0  # still within the grace period: a worker may have it
    DataExport.objects.filter(pk=export.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    out = io.StringIO()
    call_command("data_exports", stdout=out)
    assert "built 1" in out.getvalue()
    export.refresh_from_db()
    assert export.status == DataExport.Status.READY


def test_export_pages_need_the_settings_role(client):
    owner = UserFactory()
    client.force_login(UserFactory(customer=owner.customer, role=User.Role.TECHNICAL))
    assert client.post(reverse("accounts:data_export_request")).status_code == 403
    page = client.get(reverse("accounts:settings_privacy")).content.decode()
    assert 'data-testid="section-policies"' in page and 'data-testid="section-export"' not in page


# --- account deletion -----------------------------------------------------------------------------------------

def test_deletion_request_needs_the_password_and_confirmation(client):
    owner = UserFactory()
    client.force_login(owner)
    response = client.post(reverse("accounts:deletion_request"), {"password": "wrong", "confirm": "on"})
    assert response.status_code == 200 and "The password is not correct." in response.content.decode()
    response = client.post(reverse("accounts:deletion_request"), {"password": "Correct-Horse-42"})
    assert response.status_code == 200 and not DeletionRequest.objects.exists()
    response = client.post(reverse("accounts:deletion_request"),
                           {"password": "Correct-Horse-42", "confirm": "on", "reason": "Moving"})
    assert response.status_code == 302
    assert DeletionRequest.objects.get(customer=owner.customer).status == DeletionRequest.Status.PENDING
    assert 'data-testid="deletion-pending"' in client.get(reverse("accounts:settings_privacy")).content.decode()
    client.post(reverse("accounts:deletion_request_cancel"))
    assert DeletionRequest.objects.get(customer=owner.customer).status == DeletionRequest.Status.CANCELLED


def test_approved_deletion_terminates_services_anonymizes_and_keeps_the_ledger_balanced(
        client, django_capture_on_commit_callbacks):
    from allauth.socialaccount.models import SocialAccount
    from django.core.files.uploadedfile import SimpleUploadedFile

    from billing.models import Invoice, LedgerEntry
    from orders.models import Order
    from orders.services.placing import order_place
    from orders.tests.factories import PlanFactory, order_options
    from tickets.models import Ticket

    owner = UserFactory(first_name="Alice", last_name="Smith", phone="+4915112345678")
    trusted = UserFactory(customer=owner.customer, role=User.Role.TECHNICAL, first_name="Bob")
    Customer.objects.filter(pk=owner.customer_id).update(
        profile_type="company", company_name="Smith GmbH", company_vat_number="DE123", email_billing="acc@smith.test",
        verification_status="verified")  # an unverified company could not pay for the order below
    SocialAccount.objects.create(user=owner, provider="google", uid="g-1")
    user_set_avatar(user=owner, upload=SimpleUploadedFile("a.png", png_bytes()))
    avatar_path = owner.avatar.path
    invoice = make_customer_data(owner, "ERASE-ME")
    placed = order_place(customer=owner.customer, actor=owner, plan=PlanFactory(), period_months=1,
                         options=order_options(None), idempotency_key="erase-1")
    assert placed.order.status == Order.Status.ACTIVE
    from billing.gateways.models import SavedPaymentMethod
    SavedPaymentMethod.objects.create(customer=owner.customer, gateway="sandbox", token="tok_1", brand="visa",
                                      last4="4242", exp_month=12, exp_year=2030, is_default=True)
    entries_before = LedgerEntry.objects.count()
    deletion = deletion_request_create(customer=owner.customer, user=owner, reason="bye")
    staff = StaffUserFactory()
    from billing.services.settlement import customer_settle_for_deletion  # the balance and open invoice first

    customer_settle_for_deletion(customer=owner.customer, deletion_request=deletion, method="refund_bank",
                                 reason="closing the account", actor=staff, bank_reference="SEPA-1")

    with django_capture_on_commit_callbacks(execute=True):
        deletion_request_approve(deletion_request=deletion, staff=staff)

    customer = Customer.objects.get(pk=owner.customer_id)
    assert customer.anonymized_at is not None
    assert (customer.street, customer.city, customer.postcode, customer.company_name, customer.company_vat_number,
            customer.email_billing) == ("", "", "", "", "", "")
    for user in User.objects.filter(customer=customer):
        assert user.username == f"erased-{user.pk}" and not user.is_active and not user.has_usable_password()
        assert (user.first_name, user.last_name, user.email, user.phone, user.avatar.name) == ("", "", "", "", "")
    assert not SocialAccount.objects.filter(user__customer=customer).exists()
    import os
    assert not os.path.exists(avatar_path)
    assert Order.objects.get(pk=placed.order.pk).status == Order.Status.TERMINATED  # services first
    assert not SavedPaymentMethod.objects.filter(customer=customer).exists()  # nothing can be charged later
    assert not Ticket.objects.filter(customer=customer).exclude(status=Ticket.Status.CLOSED).exists()
    assert not ActivityEvent.objects.filter(customer=customer, ip__isnull=False).exists()
    # Financial records stay: the invoice keeps its issued snapshot, no ledger row was touched.
    kept = Invoice.objects.get(pk=invoice.pk)
    assert kept.payer_name == invoice.payer_name and kept.payer_name
    assert LedgerEntry.objects.count() >= entries_before
    call_command("audit_ledger", stdout=io.StringIO())
    deletion.refresh_from_db()
    assert deletion.status == DeletionRequest.Status.COMPLETED and deletion.reviewed_by == staff
    # The sessions end: the anonymized users can no longer log in.
    client.force_login(trusted)
    assert client.get("/").status_code == 302
    with pytest.raises(Exception):
        deletion_request_approve(deletion_request=deletion, staff=staff)


def test_username_stays_immutable_except_for_erasure():
    from django.db import IntegrityError, transaction

    user = UserFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.filter(pk=user.pk).update(username="someone-else")
    User.objects.filter(pk=user.pk).update(username=f"erased-{user.pk}")


def test_staff_reject_with_a_note_the_customer_sees(client):
    owner = UserFactory()
    deletion = deletion_request_create(customer=owner.customer, user=owner)
    deletion_request_reject(deletion_request=deletion, staff=StaffUserFactory(), note="Unpaid invoices first")
    client.force_login(owner)
    assert "Unpaid invoices first" in client.get(reverse("accounts:settings_privacy")).content.decode()


def test_privacy_page_lists_the_latest_exports_and_the_open_deletion_request_in_one_query(client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    owner = UserFactory()
    colleague = UserFactory(customer=owner.customer)
    now = timezone.now()
    exports = [DataExport.objects.create(customer=owner.customer, requested_by=user, status=status, size=size,
                                         expires_at=now + timedelta(days=1) if status == "ready" else None)
               for user, status, size in [(owner, "failed", 0)] * 4 + [(colleague, "ready", 2048), (owner, "ready", 4096)]]
    DataExport.objects.filter(pk=exports[0].pk).update(created_at=now - timedelta(days=9))  # the oldest drops off
    client.force_login(owner)
    page = client.get(reverse("accounts:settings_privacy")).content.decode()
    table = page[page.index('data-testid="exports"'):page.index("</table>")]
    assert table.count("<tr>") == 6 and table.index("4.0\xa0KB") < table.index("2.0\xa0KB")  # header + 5, newest first
    assert table.count('data-testid="download-export"') == 1  # only the requester downloads
    assert 'data-testid="deletion-pending"' not in page
    deletion = deletion_request_create(customer=owner.customer, user=owner)
    with CaptureQueriesContext(connection) as captured:
        page = client.get(reverse("accounts:settings_privacy")).content.decode()
    assert 'data-testid="deletion-pending"' in page and "is awaiting review" in page
    assert sum('"accounts_dataexport"' in q["sql"] or '"accounts_deletionrequest"' in q["sql"]
               for q in captured.captured_queries) == 1
    deletion_request_reject(deletion_request=deletion, staff=StaffUserFactory(), note="Unpaid <b>invoices</b>")
    page = client.get(reverse("accounts:settings_privacy")).content.decode()
    assert "Unpaid &lt;b&gt;invoices&lt;/b&gt;" in page and 'data-testid="request-deletion"' in page


def png_bytes(size=(40, 30), mode="RGB") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, size, (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_privacy_page_and_banner_in_russian(client):
    owner = UserFactory()
    Customer.objects.filter(pk=owner.customer_id).update(language="ru")
    publish()
    client.force_login(owner)
    page = client.get(reverse("accounts:settings_privacy")).content.decode()
    assert "Выгрузка моих данных" in page and "Запросить удаление аккаунта" in page
    assert "опубликована новая версия" in page and "Тёмная тема" in page


def test_demo_seed_publishes_policies_and_leaves_the_new_privacy_version_to_review():
    from accounts import demo, selectors

    StaffUserFactory()
    owner = UserFactory()
    demo.seed(customer=owner.customer, owner=owner, stdout=io.StringIO())
    assert [(p.kind, p.version) for p in selectors.policies_pending_for(user=owner)] == [("privacy", 2)]
    assert {(p.kind, p.version) for p in selectors.policies_current()} == {("privacy", 2), ("terms", 1)}


def test_staff_publish_and_approve_from_the_admin(client, django_capture_on_commit_callbacks):
    staff = StaffUserFactory()
    client.force_login(staff)
    response = client.post("/admin/accounts/policyversion/add/", {
        "kind": "privacy", "title": "Privacy policy", "text": "Text v1", "changes": ""})
    assert response.status_code == 302
    from accounts.models import PolicyVersion
    policy = PolicyVersion.objects.get()
    assert policy.version == 1 and policy.published_at is None
    client.post("/admin/accounts/policyversion/", {"action": "publish", "_selected_action": [policy.pk]})
    policy.refresh_from_db()
    assert policy.published_at is not None

    owner = UserFactory()
    deletion = deletion_request_create(customer=owner.customer, user=owner)
    url = "/admin/accounts/deletionrequest/"
    confirm = client.post(url, {"action": "approve", "_selected_action": [deletion.pk]})
    assert confirm.status_code == 200 and "cannot be undone" in confirm.content.decode()
    deletion.refresh_from_db()
    assert deletion.status == DeletionRequest.Status.PENDING  # nothing happens before the confirmation
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"action": "approve", "_selected_action": [deletion.pk], "apply": "1"})
    deletion.refresh_from_db()
    assert deletion.status == DeletionRequest.Status.COMPLETED
    assert Customer.objects.get(pk=owner.customer_id).anonymized_at is not None


def test_pending_export_polls_the_privacy_page_for_its_status(client, enqueued):
    owner = UserFactory()
    client.force_login(owner)
    client.post(reverse("accounts:data_export_request"))
    page = client.get(reverse("accounts:settings_privacy")).content.decode()
    assert 'hx-get="/accounts/settings/privacy/?part=exports"' in page and 'hx-trigger="every 5s"' in page
    part = client.get(reverse("accounts:settings_privacy"), {"part": "exports"}, HTTP_HX_REQUEST="true")
    body = part.content.decode()
    assert body.lstrip().startswith("<div id=\"exports\"") and "Being prepared" in body and "<html" not in body
    assert "disabled" in body
    data_export_build(export_id=DataExport.objects.get(customer=owner.customer).pk)
    body = client.get(reverse("accounts:settings_privacy"), {"part": "exports"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-testid="download-export"' in body and "every 5s" not in body  # ready: polling stops
    assert "request-export\" disabled" not in body
