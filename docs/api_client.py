#!/usr/bin/env python3
"""End-to-end walk through the customer API against a running portal (`make run`).

    python docs/api_client.py --base http://127.0.0.1:8000 --key hp_…

Create the key in Settings → API keys (all scopes). Reads the account, balance, services, invoices,
payments and notifications; opens a ticket and replies to it; pays the oldest unpaid invoice from the
balance if the balance covers it (with an Idempotency-Key, repeated to show the stored response).
Uses only the standard library and `requests`.
"""
import argparse
import sys
import uuid

import requests


class Api:
    def __init__(self, base: str, key: str):
        self.base = base.rstrip("/") + "/api/v1/"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"

    def call(self, method: str, path: str, **kwargs):
        response = self.session.request(method, self.base + path, timeout=30, **kwargs)
        if response.status_code >= 400:
            error = response.json().get("error", {})
            raise SystemExit(f"{method} {path}: {response.status_code} {error.get('code')}: {error.get('message')}")
        return response

    def each(self, path: str, **params):
        """Follow the cursor through every page."""
        url, params = self.base + path, {"limit": 50, **params}
        while url:
            page = self.session.get(url, params=params, timeout=30).json()
            yield from page["results"]
            url, params = page["next"], None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    api = Api(args.base, args.key)

    account = api.call("GET", "account").json()
    print(f"client {account['client_id']} as {account['user']} ({account['role']}), scopes {account['key_scopes']}")
    balance = api.call("GET", "balance").json()["balance"]
    print(f"balance {balance['amount']} {balance['currency']}")
    for service in api.each("services"):
        print(f"service #{service['id']} {service['plan']['name']} {service['status']} until {service['expires_at']}")
    unpaid = list(api.each("invoices", status="unpaid"))
    for invoice in api.each("invoices"):
        print(f"invoice {invoice['number']} {invoice['status']} {invoice['total']} {invoice['currency']}")
    for payment in api.each("payments"):
        print(f"payment #{payment['id']} {payment['amount']} {payment['currency']} {payment['status']}")
    unread = list(api.each("notifications", unread="true"))
    print(f"{len(unread)} unread notifications")

    department = api.call("GET", "departments").json()[0]
    ticket = api.call("POST", "tickets", json={"department": department["id"], "subject": "API client test",
                                              "body": "Opened by docs/api_client.py."},
                      headers={"Idempotency-Key": str(uuid.uuid4())}).json()
    print(f"opened ticket #{ticket['number']}")
    api.call("POST", f"tickets/{ticket['number']}/replies",
             files={"attachments": ("note.txt", b"attached by the API client\n", "text/plain")}, data={"body": "A file."})
    print(f"replied to #{ticket['number']} with an attachment")

    if unpaid:
        invoice = unpaid[-1]
        key = str(uuid.uuid4())
        response = api.session.post(api.base + f"invoices/{invoice['id']}/pay", headers={"Idempotency-Key": key}, timeout=30)
        if response.status_code == 200:
            again = api.session.post(api.base + f"invoices/{invoice['id']}/pay", headers={"Idempotency-Key": key}, timeout=30)
            print(f"paid {invoice['number']}; repeat replayed={again.headers.get('Idempotent-Replayed')}")
        else:
            print(f"{invoice['number']} not paid: {response.json()['error']['message']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
