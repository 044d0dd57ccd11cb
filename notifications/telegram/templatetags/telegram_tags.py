from django import template

from notifications.telegram.selectors import telegram_enabled

register = template.Library()


@register.simple_tag
def telegram_available() -> bool:
    """Lets other pages link to the Telegram page only when the bot is configured."""
    return telegram_enabled()
