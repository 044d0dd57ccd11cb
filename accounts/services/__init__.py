"""Accounts writes, one module per sub-domain; import from the module (`accounts.services.activity`).

activity (audit trail, security notices, logins) · locks · registration · contact · phone · profile ·
security · totp · trusted_users · staff · policies · data_export · deletion · social
"""
