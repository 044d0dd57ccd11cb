"""Save every benched page's HTML (English and Russian, first and second page) for comparing two
checkouts, or compare two such snapshots.

    python scripts/devenv.py -- .venv/bin/python bench/page_html.py save DIR [--only "name,name"]
    python bench/page_html.py compare DIR_A DIR_B

Uses the database bench/pages.py seeded (`--keep`), logged in as the heavy customer; `save` switches the
customer's language and zone for the Russian pass and back. CSRF tokens are blanked; `compare`
collapses whitespace between tags and masks request keys, `datetime=` attributes and clock times
(values of the moment, not of the template). Run the two `save`s one after the other: the activity log
and the server-usage chart move with the clock.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def save(out: Path, only: set[str]) -> None:
    import loadkit
    import pages

    url = loadkit.scratch_database_url("bench_pages")
    env = loadkit.production_env(url, {"DJANGO_SETTINGS_MODULE": "bench.portal_settings"})
    os.environ.update({k: env[k] for k in ("DJANGO_SETTINGS_MODULE", "SECRET_KEY", "SECURE_SSL_REDIRECT", "DATABASE_URL",
                                           "DB_CONN_MAX_AGE", "ALLOWED_HOSTS", "CACHE_KEY_PREFIX")})
    os.environ["LOG_LEVEL"] = "WARNING"
    sys.path.insert(0, str(loadkit.ROOT))
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command
    from django.test import Client

    call_command("collectstatic", interactive=False, verbosity=0)
    out.mkdir(parents=True, exist_ok=True)
    ids = pages.page_ids()
    user = pages._heavy_user()
    customers = type(user.customer).objects.filter(pk=user.customer_id)
    try:
        for language, zone in (("en", "UTC"), ("ru", "Europe/Moscow")):
            customers.update(language=language, timezone=zone)
            cache.clear()  # the top bar is cached per language
            client = Client(HTTP_HOST="127.0.0.1", secure=True)
            client.force_login(user)
            for name, path, headers in pages.PAGES:
                if only and name not in only:
                    continue
                meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
                path = path.format(**ids)
                for suffix, url_ in (("", path), ("-p2", path + ("&" if "?" in path else "?") + "page=2")):
                    response = client.get(url_, **meta)
                    html = re.sub(r'(csrfmiddlewaretoken" value=|X-CSRFToken": ")"?[A-Za-z0-9]+', r"\1CSRF",
                                  response.content.decode())
                    slug = re.sub("[^a-z0-9]+", "_", name)
                    (out / f"{language}-{slug}{suffix}.html").write_text(f"{response.status_code}\n{html}")
    finally:
        customers.update(language="en", timezone="UTC")
    print(f"saved {len(list(out.iterdir()))} pages in {out}")


def _normalised(text: str, name: str) -> str:
    text = re.sub(r"[0-9a-f]{32}", "HEX", text)
    text = re.sub(r'datetime="[^"]*"', 'datetime=""', text)
    text = re.sub(r"\b\d{1,2}:\d\d( [ap]\.m\.)?", "HH:MM", text)
    text = re.sub(r"\s+", " ", re.sub(r">\s+<", "><", text)).strip()
    if "activity" in name:  # the log grows with every login, the bench's own included
        text = re.sub(r"<tbody>.*?</tbody>", "<tbody>ROWS</tbody>", text)
    return text


def compare(a: Path, b: Path) -> int:
    differ = 0
    for file in sorted(a.iterdir()):
        other = b / file.name
        x = _normalised(file.read_text(), file.name)
        y = _normalised(other.read_text(), file.name) if other.exists() else "MISSING"
        if x != y:
            differ += 1
            at = next((k for k in range(min(len(x), len(y))) if x[k] != y[k]), min(len(x), len(y)))
            print(f"DIFF {file.name} at {at}:\n  {a}: {x[max(0, at - 150):at + 150]}\n  {b}: {y[max(0, at - 150):at + 150]}")
    print(f"{differ} differ of {len(list(a.iterdir()))}")
    return 1 if differ else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    saving = sub.add_parser("save")
    saving.add_argument("out", type=Path)
    saving.add_argument("--only", default="")
    comparing = sub.add_parser("compare")
    comparing.add_argument("a", type=Path)
    comparing.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.command == "save":
        save(args.out, {n.strip() for n in args.only.split(",") if n.strip()})
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
