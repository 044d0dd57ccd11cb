from django import template

from accounts.content import localized as localized_text

register = template.Library()


@register.filter
def localized(obj, field: str) -> str:
    """{{ plan|localized:"name" }}: the Russian name on Russian pages when staff wrote one (accounts.content)."""
    if obj is None or obj == "":
        return ""
    return localized_text(obj, field)
