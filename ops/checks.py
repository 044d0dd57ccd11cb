from django.conf import settings
from django.core.checks import Error, register


@register()
def media_storage_configured(app_configs, **kwargs):
    if settings.MEDIA_STORAGE not in ("local", "s3"):
        return [Error(f"MEDIA_STORAGE must be 'local' or 's3', not {settings.MEDIA_STORAGE!r}.", id="ops.E001")]
    if settings.MEDIA_STORAGE == "s3" and not settings.MEDIA_S3_BUCKET:
        return [Error("MEDIA_STORAGE=s3 needs MEDIA_S3_BUCKET.", id="ops.E002")]
    return []
