"""Gap-free document numbers (invoices, credit notes, acts): one counter row per series and provider year."""

from core.calendar import provider_today

from ..models import DocumentCounter


def _next_document_number(series: str) -> tuple[int, int]:
    """(year, sequence) from a counter row locked until commit: gap-free, unlike a sequence. The year
    is the provider's (TIME_ZONE), not the requester's: one series per provider year."""
    year = provider_today().year
    DocumentCounter.objects.get_or_create(series=series, year=year)
    counter = DocumentCounter.objects.select_for_update().get(series=series, year=year)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    return year, counter.last_number
