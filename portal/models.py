"""No tables here: two unmanaged models carry the back office's staff permissions.

The permissions live in the portal (the layer that composes the back office) so granting a staff
group "may adjust balances" or "may see reports" is one checkbox in Django's group admin.
"""
from django.db import models
from django.utils.translation import gettext_lazy as _


class BackOfficeAction(models.Model):
    class Meta:
        managed = False
        default_permissions = ()
        verbose_name = _("back-office action")
        verbose_name_plural = _("back-office actions")
        permissions = [
            ("verify_company", _("Can verify or reject company details")),
            ("adjust_balance", _("Can credit or debit a customer's balance")),
            ("record_bank_transfer", _("Can mark an invoice paid by bank transfer")),
            ("refund_payment", _("Can refund invoices and card payments")),
            ("manage_services", _("Can suspend, unsuspend, terminate and extend services")),
            ("clear_ip_restriction", _("Can clear a customer's IP restriction")),
            ("check_code_word", _("Can check a customer's code word")),
            ("retry_mail", _("Can retry failed mail")),
            ("review_deletion", _("Can approve or reject account deletion requests")),
            ("manage_invoices", _("Can cancel invoices and pay them from the balance")),
            ("reset_two_factor", _("Can turn off a login's two-factor authentication")),
        ]


class StaffReport(models.Model):
    """The admin's "Reports" page (portal/admin.py); `view_staffreport` lets a staff user open it."""

    class Meta:
        managed = False
        default_permissions = ("view",)
        verbose_name = _("report")
        verbose_name_plural = _("reports")
