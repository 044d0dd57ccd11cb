"""axe-core over every customer page of the seeded demo customer, in English and Russian, light and
dark theme, plus the signed-out pages: any violation of WCAG 2.0/2.1 A and AA or axe's best
practices fails the test with the rule, the element and axe's explanation.

axe-core comes from the `axe-playwright-python` wheel (it bundles `axe.min.js`), so the run needs no
network; the script is injected into each page and run with the rule tags below.
"""
import json
from pathlib import Path

import axe_playwright_python
import pytest
from django.core.management import call_command

from conftest import PHONE

from accounts.models import Customer, User

from .test_browser_russian import customer_pages

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("departments")]

AXE_SCRIPT = (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
PASSWORD = "Demo-Axe-Pass-2026"

SIGNED_OUT_PAGES = {
    "login": "/accounts/login/", "signup": "/accounts/register/", "password-reset": "/accounts/password/reset/",
}


def axe_violations(page) -> list[str]:
    """Run axe on the loaded page; one line per failing element."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SCRIPT)  # through the DevTools protocol: the page's CSP allows no inline <script>
    result = page.evaluate(
        "(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})", AXE_TAGS
    )
    lines = []
    for violation in result["violations"]:
        for node in violation["nodes"]:
            lines.append(f"{violation['id']} [{violation['impact']}] {json.dumps(node['target'])}: "
                         f"{node.get('failureSummary', '').splitlines()[-1].strip()}")
    return lines


def audit(page, pages: dict[str, str], label: str) -> dict[str, list[str]]:
    problems = {}
    for name, url in pages.items():
        response = page.goto(url)
        page.wait_for_load_state("networkidle")
        assert response is not None and response.status == 200, f"{label} {name} {url}: {response and response.status}"
        found = axe_violations(page)
        if found:
            problems[f"{label} {name} ({url})"] = found
    return problems


def report(problems: dict[str, list[str]]) -> str:
    return "axe violations:\n" + "\n".join(f"  {page}:\n" + "\n".join(f"    {line}" for line in lines)
                                           for page, lines in problems.items())


def set_language(page, code: str) -> None:
    page.locator(f"[data-testid=lang-{code}]").first.click()
    page.wait_for_load_state("networkidle")


def test_signed_out_pages_have_no_axe_violations(page):
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # published policies: sign-up shows the accept box
    problems = audit(page, SIGNED_OUT_PAGES, "en")
    assert page.goto("/accounts/register/") and page.locator("input[name=accept_policies]").count() == 1
    set_language(page, "ru")
    problems |= audit(page, SIGNED_OUT_PAGES, "ru")
    assert not problems, report(problems)


@pytest.mark.parametrize("language,theme", [("en", "light"), ("en", "dark"), ("ru", "light"), ("ru", "dark")])
def test_customer_pages_have_no_axe_violations(page, login, language, theme):
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    owner = User.objects.get(username="demo")
    owner.set_password(PASSWORD)
    owner.save(update_fields=["password"])
    Customer.objects.filter(pk=owner.customer_id).update(language=language)
    User.objects.filter(pk=owner.pk).update(theme=theme)
    pages = customer_pages(owner.customer)
    assert len(pages) >= 30

    login("demo", PASSWORD)
    page.goto("/")
    assert page.locator("html").get_attribute("lang") == language
    assert page.locator("html").get_attribute("data-bs-theme") == theme
    label = f"{language}/{theme}"
    problems = audit(page, pages, label)
    problems |= audit_states(page, label)
    assert not problems, report(problems)


# axe skips SVG: the spending chart's text (>= 4.5:1) and bars (>= 3:1, WCAG 1.4.11) against the card.
SVG_CONTRAST = """() => {
  const rgb = (text) => text.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => [r, g, b].map((c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; })
    .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (el) => { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor); if (c.length < 4 || c[3] > 0) return c.slice(0, 3); } return [255, 255, 255]; };
  const over = (fg, bg) => fg.length === 4 ? fg.slice(0, 3).map((c, i) => c * fg[3] + bg[i] * (1 - fg[3])) : fg;
  const found = [];
  document.querySelectorAll('svg.bar-chart text, svg.bar-chart rect').forEach((el) => {
    const bg = background(el.closest('svg'));
    const fg = over(rgb(getComputedStyle(el).fill), bg);
    const [a, b] = [luminance(fg), luminance(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05), needed = el.tagName === 'rect' ? 3 : 4.5;
    if (ratio < needed) found.push(`${el.tagName} "${el.textContent.trim()}" ${ratio.toFixed(2)}:1 < ${needed}:1`);
  });
  return found;
}"""


def audit_states(page, label: str) -> dict[str, list[str]]:
    """States a page load does not show: the open user menu, a form with errors, the phone menu."""
    problems = {}
    # Bootstrap drops its colour transitions for reduced motion: axe then measures the settled colours of
    # the just-clicked button, not a frame of its fade.
    page.emulate_media(reduced_motion="reduce")
    page.goto("/")
    assert page.locator("svg.bar-chart rect").count() > 0, "the demo dashboard should draw spending bars"
    if found := page.evaluate(SVG_CONTRAST):
        problems[f"{label} dashboard chart"] = found
    page.click("[data-testid=user-menu]")
    page.locator(".dropdown-menu.show").wait_for()
    if found := axe_violations(page):
        problems[f"{label} user menu open"] = found

    page.goto("/tickets/new/")
    page.click("[data-testid=submit-ticket]")
    page.wait_for_load_state("networkidle")
    assert page.locator(".invalid-feedback").count() > 0
    if found := axe_violations(page):
        problems[f"{label} ticket form with errors"] = found

    page.set_viewport_size(PHONE)
    page.goto("/orders/")
    page.click(".navbar-toggler")
    page.locator("#mainNav.show").wait_for()
    if found := axe_violations(page):
        problems[f"{label} phone menu open"] = found
    return problems
