from django.template import Context, Template


def test_message_html_renders_as_urlize_then_linebreaksbr():
    body = 'See https://example.com/a?b=1&c=<2> or mail ops@example.com\r\nnext line\n<script>alert("x")</script> www.example.org.'
    django_chain = Template("{{ body|urlize|linebreaksbr }}").render(Context({"body": body}))
    ours = Template("{% load ticket_tags %}{{ body|message_html }}").render(Context({"body": body}))
    assert ours == django_chain
    assert "<br>" in ours and 'href="https://example.com/a?b=1&amp;c=' in ours and "&lt;script&gt;" in ours
    assert Template("{% load ticket_tags %}{{ body|message_html }}").render(Context({"body": body})) == ours  # cached


def test_reply_form_html_prints_as_crispy_in_each_language_and_for_a_refused_reply(settings):
    from crispy_forms.templatetags.crispy_forms_filters import as_crispy_form
    from django.utils import translation

    from tickets.forms import ReplyForm
    from tickets.templatetags.ticket_tags import reply_form_html

    for language in ("en", "ru", "en"):
        with translation.override(language):
            for _ in range(2):  # the second one from the memo
                assert reply_form_html(ReplyForm()) == as_crispy_form(ReplyForm())
            refused = reply_form_html(ReplyForm({"body": ""}))
            assert refused == as_crispy_form(ReplyForm({"body": ""})) and "is-invalid" in refused
    settings.TICKETS_ATTACHMENTS_PER_MESSAGE = 2  # the help text changes: a new key
    assert reply_form_html(ReplyForm()) == as_crispy_form(ReplyForm()) and "Up to 2 files" in reply_form_html(ReplyForm())
