from django.template import Context, Template


def test_message_html_renders_as_urlize_then_linebreaksbr():
    body = 'See https://example.com/a?b=1&c=<2> or mail ops@example.com\r\nnext line\n<script>alert("x")</script> www.example.org.'
    django_chain = Template("{{ body|urlize|linebreaksbr }}").render(Context({"body": body}))
    ours = Template("{% load ticket_tags %}{{ body|message_html }}").render(Context({"body": body}))
    assert ours == django_chain
    assert "<br>" in ours and 'href="https://example.com/a?b=1&amp;c=' in ours and "&lt;script&gt;" in ours
    assert Template("{% load ticket_tags %}{{ body|message_html }}").render(Context({"body": body})) == ours  # cached
