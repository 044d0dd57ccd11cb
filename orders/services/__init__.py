"""Writes for orders, one module per sub-domain. Every function runs under transaction.atomic and
records an OrderEvent naming who or what caused the change.

- `placing`: the quote, placing an order, its payment hook, provisioning and activation.
- `renewing`: the renewal price and invoice, renewing, its payment hook and the renewal rule.
- `renewal_batch`: the set-based auto-renewal job (Celery beat and `manage.py renew_services`).
- `cancelling`: the auto-renewal toggle and cancellation.
- `plan_change`: upgrades, scheduled downgrades, re-pricing issued renewals.
- `lifecycle`: the expiry, suspension, termination and notices job.
- `staff`: staff actions from the admin (suspend, unsuspend, terminate, extend).
- `common`: helpers they share (event record, staff audit, notifications, formatting, row lock).

Money never moves here: orders issue invoices through billing and ask billing to pay them from the
balance; whatever pays an invoice (balance, gateway, staff) ends in one of the `on_*_invoice_paid`
handlers registered in OrdersConfig.ready().
"""
