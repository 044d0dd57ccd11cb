from django.http import FileResponse, Http404

from .models import Attachment
from .uploads import ALLOWED_TYPES


def attachment_response(attachment: Attachment) -> FileResponse:
    """Always a download, never rendered inline: the browser must not interpret uploaded content."""
    content_type = attachment.content_type if attachment.content_type in ALLOWED_TYPES else "application/octet-stream"
    if content_type == "text/plain":
        content_type = "text/plain; charset=utf-8"
    try:
        handle = attachment.file.open("rb")
    except FileNotFoundError:
        raise Http404
    response = FileResponse(handle, as_attachment=True, filename=attachment.original_name, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    return response
