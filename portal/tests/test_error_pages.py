"""Error pages a person can read: a GET on a POST-only address is a translated 405 page, not a blank one."""
import pytest
from django.urls import reverse

from accounts.models import Customer
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url_name", ["accounts:logout", "orders:order_batch_renew", "accounts:theme_set"])
def test_get_on_a_post_only_url_renders_a_405_page(client, url_name):
    client.force_login(UserFactory())
    response = client.get(reverse(url_name))
    assert response.status_code == 405
    assert "POST" in response["Allow"]
    html = response.content.decode()
    assert 'data-testid="error-405"' in html and "This address cannot be opened directly" in html
    assert 'href="/"' in html


def test_405_page_is_in_the_customers_language(client):
    user = UserFactory()
    Customer.objects.filter(pk=user.customer_id).update(language="ru")
    client.force_login(user)
    html = client.get(reverse("orders:order_batch_renew")).content.decode()
    assert "Этот адрес нельзя открыть напрямую" in html


def test_htmx_requests_keep_the_bare_405(client):
    client.force_login(UserFactory())
    response = client.get(reverse("orders:order_batch_renew"), HTTP_HX_REQUEST="true")
    assert response.status_code == 405 and response.content == b""
