"""kombu's Redis transport with one fix: an ack (or reject) that Redis does not answer still frees the
worker's prefetch slot.

kombu's `redis.QoS.ack` removes the message from the unacked index first and frees the slot only after
Redis answered. When that command times out (a frozen Redis, a failover), Celery logs "Couldn't ack"
and goes on, but the slot stays taken: with `worker_prefetch_multiplier = 1` a worker of concurrency N
then fetches at most N-1 tasks at a time, and a worker of concurrency 1 never fetches again, silently,
while it looks alive (portal/tests/faults/test_redis_frozen.py caught it). Freeing the slot is safe: a
message whose ack did not reach Redis stays in the unacked index and is delivered again after the
visibility timeout (every task is idempotent, settings: CELERY_TASK_ACKS_LATE).

Selected by CELERY_BROKER_TRANSPORT for redis:// and rediss:// URLs; the rest is kombu's transport.
"""
from kombu.transport import redis


class QoS(redis.QoS):
    def ack(self, delivery_tag):
        try:
            super().ack(delivery_tag)
        except BaseException:
            self._quick_ack(delivery_tag)  # what super() does after Redis answered
            raise

    def reject(self, delivery_tag, requeue=False):
        try:
            super().reject(delivery_tag, requeue=requeue)
        except BaseException:
            self._quick_ack(delivery_tag)
            raise


class Channel(redis.Channel):
    QoS = QoS


class RedisTransport(redis.Transport):
    Channel = Channel
