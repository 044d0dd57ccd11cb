"""Concurrency claims of the personal-data and social-login services, proven with real parallel transactions."""
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from accounts.models import DataExport
from accounts.services.data_export import data_export_request
from accounts.services.social import social_account_unlink
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def run_parallel(*calls):
    """Start every call at once in its own thread/connection; return the results (or raised errors)."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def worker(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except Exception as error:  # collected and asserted by the test
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_simultaneous_export_requests_queue_one_export(monkeypatch):
    from accounts import tasks

    monkeypatch.setattr(tasks.data_export_build_task, "apply_async", lambda **kwargs: None)
    owner = UserFactory()
    results = run_parallel(*[lambda: data_export_request(customer=owner.customer, user=owner)] * 4)
    assert DataExport.objects.filter(customer=owner.customer).count() == 1
    assert sum(isinstance(r, DataExport) for r in results) == 1
    assert all(isinstance(r, (DataExport, ValidationError)) for r in results)


def test_two_simultaneous_unlinks_cannot_remove_the_last_way_in():
    from allauth.socialaccount.models import SocialAccount

    user = UserFactory()
    user.set_unusable_password()
    user.save()
    google = SocialAccount.objects.create(user=user, provider="google", uid="g")
    facebook = SocialAccount.objects.create(user=user, provider="facebook", uid="f")
    results = run_parallel(lambda: social_account_unlink(user=user, account_id=google.pk),
                           lambda: social_account_unlink(user=user, account_id=facebook.pk))
    assert SocialAccount.objects.filter(user=user).count() == 1
    assert sorted(type(r).__name__ for r in results) == ["ValidationError", "str"]
