from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.conf import settings

        from django.core.signals import request_finished

        from . import checks  # noqa: F401 - registers the system checks
        from .middleware import clear_log_context

        request_finished.connect(clear_log_context, dispatch_uid="ops.clear_log_context")

        if settings.SENTRY_DSN:
            from .sentry import init_sentry

            init_sentry(settings.SENTRY_DSN)
