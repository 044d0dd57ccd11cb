"""Concurrency claims of the personal-data and social-login services, proven with real parallel transactions."""
import pytest
from django.core.exceptions import ValidationError

from accounts.models import DataExport
from accounts.services.data_export import data_export_request
from accounts.services.social import social_account_unlink
from accounts.tests.factories import UserFactory
from billing.tests.concurrency import run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_simultaneous_export_requests_queue_one_export(monkeypatch):
    from accounts import tasks

    monkeypatch.setattr(tasks.data_export_build_task, "apply_async", lambda **kwargs: None)
    owner = UserFactory()
    results, errors = run_concurrently(lambda: data_export_request(customer=owner.customer, user=owner), [()] * 4)
    assert DataExport.objects.filter(customer=owner.customer).count() == 1
    assert sum(isinstance(r, DataExport) for r in results) == 1
    assert all(isinstance(r, (DataExport, ValidationError)) for r in results + errors)


def test_two_simultaneous_unlinks_cannot_remove_the_last_way_in():
    from allauth.socialaccount.models import SocialAccount

    user = UserFactory()
    user.set_unusable_password()
    user.save()
    google = SocialAccount.objects.create(user=user, provider="google", uid="g")
    facebook = SocialAccount.objects.create(user=user, provider="facebook", uid="f")
    results, errors = run_concurrently(lambda account: social_account_unlink(user=user, account_id=account.pk),
                                       [(google,), (facebook,)])
    assert SocialAccount.objects.filter(user=user).count() == 1
    assert sorted(type(r).__name__ for r in results + errors) == ["ValidationError", "str"]
