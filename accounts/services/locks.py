"""Row locks shared by the accounts services (docs/ARCHITECTURE.md, "Locking order")."""
from ..models import Customer


def customer_lock(customer: Customer) -> Customer:
    # NO KEY UPDATE (docs/ARCHITECTURE.md, lock order): serialises writers of the customer row without
    # blocking the foreign-key checks of rows other transactions insert for it (invoices, notifications)
    # while they hold order or account locks - a FOR UPDATE here could deadlock with them.
    return Customer.objects.select_for_update(no_key=True).get(pk=customer.pk)
