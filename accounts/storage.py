import os

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage


class LocalPrivateStorage(FileSystemStorage):
    """PRIVATE_MEDIA_ROOT on this host's disk, read on every use so a changed setting applies at once."""

    @property
    def base_location(self):
        return settings.PRIVATE_MEDIA_ROOT

    @property
    def location(self):
        return os.path.abspath(self.base_location)


_s3_backends: dict[tuple, Storage] = {}


def s3_private_storage() -> Storage:
    """django-storages' S3Storage from the MEDIA_S3_* settings (one per configuration): private objects
    (no ACL), never overwritten, under MEDIA_S3_PREFIX in the bucket."""
    from storages.backends.s3 import S3Storage

    options = {
        "bucket_name": settings.MEDIA_S3_BUCKET,
        "endpoint_url": settings.MEDIA_S3_ENDPOINT_URL or None,
        "region_name": settings.MEDIA_S3_REGION or None,
        "access_key": settings.MEDIA_S3_ACCESS_KEY_ID or None,
        "secret_key": settings.MEDIA_S3_SECRET_ACCESS_KEY or None,
        "location": settings.MEDIA_S3_PREFIX,
        "default_acl": None,
        "file_overwrite": False,
        "querystring_auth": True,
        "querystring_expire": 300,
    }
    key = tuple(sorted(options.items()))
    if key not in _s3_backends:
        _s3_backends[key] = S3Storage(**options)
    return _s3_backends[key]


class PrivateStorage(Storage):
    """Avatars, data exports and ticket attachments. Only views that check access serve them, by
    streaming the file through the app: these files have no URL.

    MEDIA_STORAGE picks where they live, on every call: "local" (PRIVATE_MEDIA_ROOT) or "s3" (shared by
    every web and worker host, so an export built on a worker host downloads from any web host).
    """

    def backend(self) -> Storage:
        if settings.MEDIA_STORAGE == "s3":
            return s3_private_storage()
        return LocalPrivateStorage()

    def _open(self, name, mode="rb"):
        return self.backend().open(name, mode)

    def _save(self, name, content):
        return self.backend()._save(name, content)

    def get_available_name(self, name, max_length=None):
        return self.backend().get_available_name(name, max_length=max_length)

    def delete(self, name):
        return self.backend().delete(name)

    def exists(self, name):
        return self.backend().exists(name)

    def listdir(self, path):
        return self.backend().listdir(path)

    def size(self, name):
        return self.backend().size(name)

    def path(self, name):
        return self.backend().path(name)

    def get_modified_time(self, name):
        return self.backend().get_modified_time(name)

    def url(self, name):
        raise ValueError("Private files have no public URL; use the access-checked views.")
