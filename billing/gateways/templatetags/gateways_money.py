from django import template

from billing.money import format_money

register = template.Library()


@register.filter
def money(amount, currency):
    return format_money(amount, currency)


@register.filter
def gateway_label(code):
    from billing.hooks import payment_method_label

    return payment_method_label(code)
