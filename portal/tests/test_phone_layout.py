"""Phone (390 px) and tablet (768 px) layout of the seeded demo customer's pages, in English and Russian.

Each page is screenshotted into test-artifacts/ (phone-<width>-<lang>-<page>.png, reviewed by a
person) and fails when anything needs sideways scrolling: the page wider than the viewport, or a
table scrolling inside its own box (only the settings tab strip, marked data-scroll-strip, scrolls
on purpose). At 1366 px the main navigation must fit on one line, and the keyboard meets "Skip to
content" first and the menu before the balance and user menu.
"""
import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts.models import Customer, User

from .test_browser_russian import customer_pages

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("departments")]

PASSWORD = "Demo-Phone-Pass-2026"
LIST_PAGES = ["orders", "invoices", "payments", "expenses", "tickets", "dashboard"]

# Elements wider than the viewport, and scroll boxes (tables) whose content is wider than the box.
SIDEWAYS = """() => {
  const width = document.documentElement.clientWidth;
  const found = [];
  if (document.documentElement.scrollWidth > width) found.push(`page ${document.documentElement.scrollWidth}px > ${width}px`);
  document.querySelectorAll('.table-responsive, main *').forEach((el) => {
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden') return;
    if (el.closest('.visually-hidden')) return;
    // Clipped to nothing on purpose: the header row of a stacked table (its labels sit on each cell).
    for (let node = el; node; node = node.parentElement) if (getComputedStyle(node).clip === 'rect(0px, 0px, 0px, 0px)') return;
    // A deliberate sideways strip (the settings tabs on a phone) and what it holds.
    if (el.closest('[data-scroll-strip]')) return;
    const rect = el.getBoundingClientRect();
    if (rect.width && rect.right > width + 1) found.push(`${el.tagName.toLowerCase()}.${el.className} ends at ${Math.round(rect.right)}px`);
    if (['auto', 'scroll'].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1)
      found.push(`${el.tagName.toLowerCase()}.${el.className} scrolls sideways (${el.scrollWidth}px in ${el.clientWidth}px)`);
  });
  return [...new Set(found)].slice(0, 8);
}"""


@pytest.fixture
def demo(db):
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    owner = User.objects.get(username="demo")
    owner.set_password(PASSWORD)
    owner.save(update_fields=["password"])
    return owner


@pytest.mark.parametrize("language", ["en", "ru"])
@pytest.mark.parametrize("width", [390, 768, 1366])
def test_list_pages_need_no_sideways_scrolling(page, login, screenshot, demo, width, language):
    Customer.objects.filter(pk=demo.customer_id).update(language=language)
    pages = {name: url for name, url in customer_pages(demo.customer).items() if name in LIST_PAGES}
    assert set(pages) == set(LIST_PAGES)
    page.set_viewport_size({"width": width, "height": 844})
    login("demo", PASSWORD)
    problems = {}
    for name, url in pages.items():
        page.goto(url)
        page.wait_for_load_state("networkidle")
        screenshot(f"phone-{width}-{language}-{name}")
        if found := page.evaluate(SIDEWAYS):
            problems[f"{name} ({url})"] = found
    assert not problems, f"sideways scrolling at {width}px:\n" + "\n".join(f"  {k}: {v}" for k, v in problems.items())


@pytest.mark.parametrize("language", ["en", "ru"])
def test_every_customer_page_fits_a_phone(page, login, screenshot, demo, language):
    Customer.objects.filter(pk=demo.customer_id).update(language=language)
    page.set_viewport_size({"width": 390, "height": 844})
    login("demo", PASSWORD)
    problems = {}
    for name, url in customer_pages(demo.customer).items():
        page.goto(url)
        page.wait_for_load_state("networkidle")
        if found := page.evaluate(SIDEWAYS):
            screenshot(f"phone-390-{language}-{name}")
            problems[f"{name} ({url})"] = found
    assert not problems, "sideways scrolling at 390px:\n" + "\n".join(f"  {k}: {v}" for k, v in problems.items())


@pytest.mark.parametrize("language", ["en", "ru"])
def test_navigation_collapses_on_a_phone_and_fits_one_line_at_1366(page, login, screenshot, demo, language):
    Customer.objects.filter(pk=demo.customer_id).update(language=language)
    login("demo", PASSWORD)
    page.goto(reverse("orders:order_list"))
    tops = page.eval_on_selector_all("#mainNav .nav-link", "links => links.map(l => Math.round(l.getBoundingClientRect().top))")
    assert len(tops) >= 6 and len(set(tops)) == 1, f"navigation wraps at 1366px in {language}: {tops}"
    lines = page.eval_on_selector_all(
        "#mainNav .nav-link",
        "links => links.map(l => l.getClientRects().length > 1 || l.getBoundingClientRect().height > 1.8 * parseFloat(getComputedStyle(l).lineHeight))",
    )
    assert not any(lines), f"a navigation label wraps onto two lines at 1366px in {language}"
    brand, user = page.locator(".navbar-brand").bounding_box(), page.locator("[data-testid=user-menu]").bounding_box()
    assert abs(brand["y"] - user["y"]) < brand["height"], "user menu dropped below the brand"
    screenshot(f"nav-1366-{language}", full_page=False)

    # Keyboard: the first Tab is "Skip to content"; then the menu in visual order, balance and user menu last.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.testid") == "skip-link"
    stops = []
    for _ in range(11):
        page.keyboard.press("Tab")
        stops.append(page.evaluate("document.activeElement.dataset.testid || document.activeElement.className"))
    assert stops.index("nav-orders") < stops.index("nav-notifications") < stops.index("topbar-balance") < stops.index("user-menu"), stops
    page.goto(reverse("orders:order_list"))
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(reverse("orders:order_list"))
    assert not page.locator("#mainNav").is_visible()
    navbar_height = page.locator("nav.navbar").bounding_box()["height"]
    assert navbar_height < 80, f"collapsed navbar is {navbar_height}px high"
    page.click(".navbar-toggler")
    page.locator("#mainNav.show").wait_for()
    assert page.locator("#mainNav .nav-link").first.is_visible()
    assert not page.evaluate(SIDEWAYS)
    screenshot(f"nav-390-{language}-open", full_page=False)
