import re

import pytest
from django.core import mail

from accounts.models import User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_register_verify_login_dashboard_switch_to_russian(page, screenshot, live_server):
    page.goto("/accounts/register/")
    screenshot("register-en")
    page.fill("input[name=username]", "browseruser")
    page.fill("input[name=email]", "browser@example.com")
    page.fill("input[name=first_name]", "Bruno")
    page.fill("input[name=last_name]", "Wser")
    page.fill("input[name=password1]", "Sturdy-Passphrase-9")
    page.fill("input[name=password2]", "Sturdy-Passphrase-9")
    page.click("form [type=submit]")
    page.wait_for_selector("text=Check your email")

    link = re.search(r"http://\S+/accounts/verify/\S+/", mail.outbox[-1].body).group(0)
    page.goto(link.replace("http://127.0.0.1:8000", live_server.url))
    page.click("[data-testid=confirm-email]")
    page.wait_for_url("**/accounts/login/**")
    assert User.objects.get(username="browseruser").email_verified

    screenshot("login-en")
    page.fill("input[name=username]", "browser@example.com")
    page.fill("input[name=password]", "Sturdy-Passphrase-9")
    page.click("form [type=submit]")
    client_id = str(User.objects.get(username="browseruser").customer_id)
    assert page.inner_text("[data-testid=dashboard-client-id]") == client_id
    assert client_id in page.inner_text("[data-testid=client-id]")
    screenshot("dashboard-en")

    page.click("[data-testid=lang-ru]")
    page.wait_for_selector("text=Панель управления")
    assert page.locator("html").get_attribute("lang") == "ru"
    screenshot("dashboard-ru")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot("dashboard-ru-phone")
    # The choice is remembered in the account, not only the cookie.
    assert User.objects.get(username="browseruser").customer.language == "ru"
