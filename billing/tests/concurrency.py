"""Real parallel transactions for concurrency tests (use with django_db(transaction=True))."""
import threading

from django.db import connection


def run_concurrently(fn, calls: list[tuple]) -> tuple[list, list]:
    """Call fn(*args) once per args tuple, each in its own thread and database connection, all released
    at once by a barrier. Returns (results, errors) in completion order."""
    barrier = threading.Barrier(len(calls))
    results, errors = [], []

    def worker(args):
        try:
            barrier.wait()
            results.append(fn(*args))
        except Exception as exc:  # reported to the test through `errors`
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(args,)) for args in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors
