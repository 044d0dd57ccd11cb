"""The console process's token plugin (kept apart from orders.console, which needs Django's models loaded).

The console process (orders/console_relay.py) imports this module before Django is set up; `lookup`
sets it up on first use (DJANGO_SETTINGS_MODULE from the environment) and redeems the one-time token
(orders.console): a `ConsoleTarget`, or None."""


class ConsoleTokenPlugin:
    def __init__(self, source=None):
        self.source = source

    def lookup(self, token):
        import os

        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")
        django.setup()
        from django.db import close_old_connections, connection

        from orders.console import console_redeem

        # A long-running proxy: drop a connection the database closed meanwhile (never inside a
        # transaction, as when a test calls the plugin).
        if not connection.in_atomic_block:
            close_old_connections()
        return console_redeem(token=token)
