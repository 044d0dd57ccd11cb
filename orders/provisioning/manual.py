"""manual: staff set the server up and complete the order in the admin, entering its IP address.
Suspension, unsuspension and termination are staff's own work on their equipment."""
from django.utils.translation import gettext as _

from .base import ProvisioningModule, ProvisionResult


class ManualModule(ProvisioningModule):
    code = "manual"
    name = "Manual"

    def provision(self, order) -> ProvisionResult:
        return ProvisionResult(ip=None, note=_("Our staff are setting up your server."))
