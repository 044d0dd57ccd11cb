"""Checks on uploaded attachments: name, size, and type decided by the file's content.

The extension alone proves nothing (an executable renamed `.png` is still an executable), so the
first bytes decide the type and the extension must agree with it.
"""
import os
import re
import unicodedata
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

# Content type → extensions accepted for it.
ALLOWED_TYPES: dict[str, tuple[str, ...]] = {
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg"),
    "image/gif": (".gif",),
    "application/pdf": (".pdf",),
    "application/zip": (".zip",),
    "text/plain": (".txt", ".log", ".csv", ".conf", ".cfg", ".ini", ".json", ".yaml", ".yml"),
}
ALLOWED_EXTENSIONS = tuple(ext for extensions in ALLOWED_TYPES.values() for ext in extensions)

SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),  # empty archive
)
# ELF, Windows PE (MZ), Mach-O (32/64-bit, both byte orders) and universal binaries.
EXECUTABLE_SIGNATURES = (
    b"\x7fELF", b"MZ", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
)
SNIFF_BYTES = 64 * 1024
MAX_NAME_LENGTH = 120


@dataclass(frozen=True)
class CheckedUpload:
    file: UploadedFile
    name: str
    content_type: str
    size: int


def clean_file_name(raw_name: str) -> str:
    """Refuse names that try to be paths or hide themselves; tame the rest to a safe display name."""
    name = unicodedata.normalize("NFC", raw_name or "").strip()
    shown = name[:60]
    if (
        not name
        or "/" in name
        or "\\" in name
        or ":" in name
        or name.startswith(".")
        or any(unicodedata.category(char).startswith("C") for char in name)
    ):
        raise ValidationError(
            _("The file name “%(name)s” is not allowed. Rename the file and try again.") % {"name": shown},
            code="bad_name",
        )
    stem, suffix = os.path.splitext(name)
    stem = re.sub(r"[^\w\-. ()\[\]]+", "_", stem).strip(" ._") or "file"
    suffix = suffix.lower()
    return stem[: MAX_NAME_LENGTH - len(suffix)] + suffix


def sniff_content_type(head: bytes) -> str | None:
    """The content type the first bytes prove, or None for anything we do not accept."""
    if head.startswith(EXECUTABLE_SIGNATURES):
        return None
    for signature, content_type in SIGNATURES:
        if head.startswith(signature):
            return content_type
    if b"\x00" in head:
        return None
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut by the sniff window is still text.
        if len(head) < SNIFF_BYTES or error.start < len(head) - 3:
            return None
    return "text/plain"


def read_head(upload: UploadedFile) -> bytes:
    upload.seek(0)
    head = upload.read(SNIFF_BYTES)
    upload.seek(0)
    return head


def check_upload(upload: UploadedFile) -> CheckedUpload:
    """Validate one uploaded file; raises ValidationError with a message naming the file."""
    name = clean_file_name(upload.name)
    limit = settings.TICKETS_ATTACHMENT_MAX_BYTES
    if upload.size > limit:
        raise ValidationError(
            _("“%(name)s” is %(size)s; the limit is %(limit)s per file.")
            % {"name": name, "size": filesizeformat(upload.size), "limit": filesizeformat(limit)},
            code="too_large",
        )
    head = read_head(upload)
    if head.startswith(EXECUTABLE_SIGNATURES):
        raise ValidationError(
            _("“%(name)s” is an executable program; programs cannot be attached.") % {"name": name},
            code="executable",
        )
    content_type = sniff_content_type(head)
    extension = os.path.splitext(name)[1]
    if content_type is None:
        raise ValidationError(
            _("“%(name)s” is not an accepted file type. Attach images (PNG, JPEG, GIF), PDF, ZIP or text files.")
            % {"name": name},
            code="bad_type",
        )
    if extension not in ALLOWED_TYPES[content_type]:
        raise ValidationError(
            _("The content of “%(name)s” does not match its extension %(extension)s.")
            % {"name": name, "extension": extension or "-"},
            code="type_mismatch",
        )
    return CheckedUpload(file=upload, name=name, content_type=content_type, size=upload.size)
