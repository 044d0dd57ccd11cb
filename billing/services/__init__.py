"""Billing writes, one module per sub-domain: `ledger`, `numbering`, `invoices`, `payments`,
`corrections` (staff: credit notes, adjustments, write-offs), `refunds` (to the card or bank account),
`settlement` (account deletion), `currency` (account currency), `rates` (exchange rates), `payers`,
`acts`, `contracts`; the errors they raise are in `errors`. Reads (payer details, the tax rule applied,
the payment gate) are `billing.selectors`; the pure tax and totals rules `billing.tax`. Import from the
module itself (`billing.services.invoices`): this package re-exports nothing.

Every function runs under transaction.atomic and keeps one locking order
(docs/ARCHITECTURE.md, "Locking order"):

    gateway rows -> the invoice's owner (an order, via hooks.lock_invoice_owners) -> document counter
    -> invoice rows (by pk) -> customer row (FOR NO KEY UPDATE, `invoices.customer_currency_lock`)
    -> customer balance accounts (by pk) -> provider accounts (by pk)

Each business operation posts ONE ledger transaction whose accounts are all locked at once by
`ledger.ledger_accounts_lock`, so two operations never wait on each other in opposite orders.
"""
