"""Avatar images: the type is decided by decoding the content, never by the name; what we store is
our own re-encoded copy (resized, EXIF and any other metadata dropped)."""
import io

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED_FORMATS = {"PNG", "JPEG", "GIF", "WEBP"}
MAX_PIXELS = 40_000_000  # refuse decompression bombs long before they reach memory


def avatar_reencode(upload) -> tuple[bytes, str]:
    """Return (image bytes, extension): PNG when the picture has transparency, JPEG otherwise."""
    if upload.size > settings.ACCOUNTS_AVATAR_MAX_BYTES:
        raise ValidationError(_("The image is too large: at most %(mb)s MB.") % {
            "mb": round(settings.ACCOUNTS_AVATAR_MAX_BYTES / 1024 / 1024, 1)}, code="too_large")
    if upload.size == 0:
        raise ValidationError(_("The file is empty."), code="empty")
    raw = upload.read()
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            if probe.format not in ACCEPTED_FORMATS:
                raise ValidationError(_("Upload a PNG, JPEG, GIF or WebP image."), code="type")
            if probe.width * probe.height > MAX_PIXELS:
                raise ValidationError(_("The image has too many pixels."), code="too_many_pixels")
            probe.verify()  # structure check; the image cannot be used afterwards, so reopen below
        with Image.open(io.BytesIO(raw)) as image:
            image.seek(0)  # first frame of an animation
            image = ImageOps.exif_transpose(image)  # keep the orientation the EXIF asked for, then drop EXIF
            image.thumbnail((settings.ACCOUNTS_AVATAR_SIZE, settings.ACCOUNTS_AVATAR_SIZE), Image.Resampling.LANCZOS)
            has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
            output = io.BytesIO()
            if has_alpha:
                image.convert("RGBA").save(output, format="PNG", optimize=True)
                return output.getvalue(), "png"
            image.convert("RGB").save(output, format="JPEG", quality=88, optimize=True)
            return output.getvalue(), "jpg"
    except ValidationError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        raise ValidationError(_("This file is not an image we can read. Upload a PNG, JPEG, GIF or WebP image."),
                              code="not_image")
