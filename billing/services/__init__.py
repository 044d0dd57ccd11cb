"""Billing writes, one module per sub-domain: `ledger`, `numbering`, `tax`, `invoices`, `payments`,
`corrections` (staff: credit notes, adjustments, write-offs), `refunds` (to the card or bank account),
`settlement` (account deletion), `currency` (account currency), `rates` (exchange rates), `payers`
(and the payment gate), `acts`, `contracts`; the errors they raise are in `errors`. Import from the
module itself (`billing.services.invoices`): this package re-exports nothing.

Every function runs under transaction.atomic and keeps one locking order
(docs/ARCHITECTURE.md, "Locking order"):

    gateway rows -> the invoice's owner (an order, via hooks.lock_invoice_owners) -> document counter
    -> invoice rows (by pk) -> customer row (FOR NO KEY UPDATE, `invoices._account_currency_locked`)
    -> customer balance accounts (by pk) -> provider accounts (by pk)

Each business operation posts ONE ledger transaction whose accounts are all locked at once by
`ledger._lock_accounts`, so two operations never wait on each other in opposite orders.
"""
