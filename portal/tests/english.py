"""Common English UI words that must not survive in a Russian page, email or PDF."""
import re

ENGLISH_UI_WORDS = [
    "Dashboard", "Balance", "Invoice", "Invoices", "Orders", "Tickets", "Notifications", "Settings", "Add funds",
    "Save", "Cancel", "Submit", "Renew", "Status", "Amount", "Unpaid", "Paid", "Total", "Search", "Previous",
    "Next", "Details", "History", "Delete", "Download", "Expires", "Price", "Currency", "Subject", "Reply",
    "Payment", "Payments", "Expenses", "Profile", "Security", "Password", "Language", "Confirm", "Continue",
    "Active", "Pending", "Closed", "month", "months", "days", "Yes", "No", "Enabled", "Disabled", "the", "your",
    "You", "and", "of", "to", "for",
]
DENYLIST = re.compile(r"(?<![\w@.-])(" + "|".join(re.escape(w) for w in ENGLISH_UI_WORDS) + r")(?![\w@.-])")


def english_leftovers(text: str, data: list[str] = ()) -> list[str]:
    """English UI words in `text` once the data strings (typed by people, not UI) are removed."""
    for value in sorted(data, key=len, reverse=True):
        text = text.replace(value, " ")
    return sorted(set(DENYLIST.findall(text)))
