"""The provider's calendar. Document years, act months and auto-payment months belong to the provider
(TIME_ZONE), whichever customer's time zone the current request has activated."""
import datetime as dt

from django.utils import timezone


def provider_today(now: dt.datetime | None = None) -> dt.date:
    return timezone.localdate(now, timezone=timezone.get_default_timezone())
