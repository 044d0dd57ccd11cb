from django.urls import path

from . import views

app_name = "billing"

urlpatterns = [
    path("", views.balance, name="balance"),
    path("topup/", views.topup, name="topup"),
    path("topup/preview/", views.topup_preview, name="topup_preview"),
    path("currency/", views.currency_change, name="currency_change"),
    path("invoices/", views.invoice_list, name="invoices"),
    path("invoices/export.csv", views.invoice_list_csv, name="invoices_csv"),
    path("invoices/<int:invoice_id>/", views.invoice_detail, name="invoice_detail"),
    path("invoices/<int:invoice_id>/pdf/", views.invoice_pdf, name="invoice_pdf"),
    path("invoices/<int:invoice_id>/pay-from-balance/", views.invoice_pay_balance, name="invoice_pay_balance"),
    path("invoices/<int:invoice_id>/apply-balance/", views.invoice_apply_balance, name="invoice_apply_balance"),
    path("invoices/<int:invoice_id>/top-up-difference/", views.invoice_topup_difference, name="invoice_topup_difference"),
    path("invoices/<int:invoice_id>/cancel/", views.invoice_cancel, name="invoice_cancel"),
    path("payments/", views.payment_list, name="payments"),
    path("payments/<int:payment_id>/", views.payment_detail, name="payment_detail"),
    path("expenses/", views.expense_list, name="expenses"),
    path("invoices/<int:invoice_id>/payer/", views.invoice_payer, name="invoice_payer"),
    path("payers/", views.payer_list, name="payers"),
    path("payers/new/", views.payer_create, name="payer_create"),
    path("payers/<int:payer_id>/edit/", views.payer_edit, name="payer_edit"),
    path("payers/<int:payer_id>/delete/", views.payer_delete, name="payer_delete"),
    path("documents/", views.documents, name="documents"),
    path("documents/acts/<int:act_id>/pdf/", views.act_pdf, name="act_pdf"),
    path("documents/credit-notes/<int:credit_note_id>/pdf/", views.credit_note_pdf, name="credit_note_pdf"),
    path("documents/contracts/<int:payer_id>/pdf/", views.contract_pdf, name="contract_pdf"),
    path("documents/contracts/<int:payer_id>/accept/", views.contract_accept, name="contract_accept"),
    path("documents/contracts/accepted/<int:acceptance_id>/pdf/", views.contract_acceptance_pdf, name="contract_acceptance_pdf"),
]
