from django.utils import translation


class CustomerLocaleMiddleware:
    """Signed-in customers see the interface in the language saved in their settings."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.customer_id:
            language = user.customer.language
            translation.activate(language)
            request.LANGUAGE_CODE = language
        return self.get_response(request)
