"""portal.broker: an ack or reject that Redis does not answer frees the prefetch slot (kombu's own
transport keeps it taken, and a worker of concurrency 1 stops fetching for good)."""
import pytest
import redis as redis_py
from django.conf import settings
from kombu import Connection, Exchange, Queue
from kombu.transport import redis as kombu_redis

from portal.broker import RedisTransport
from portal.celery import app as celery_app


class Unanswered:
    def execute(self):
        raise redis_py.exceptions.TimeoutError("Timeout reading from socket")


def _delivered_message(connection: Connection, queue_name: str):
    channel = connection.channel()
    channel.basic_qos(0, 1, False)
    queue = Queue(queue_name, Exchange(queue_name), routing_key=queue_name, channel=channel)
    queue.declare()
    queue.purge()
    connection.Producer(channel).publish({"n": 1}, exchange=queue.exchange, routing_key=queue_name,
                                         declare=[queue])
    message = queue.get(no_ack=False)
    assert message is not None and not channel.qos.can_consume()  # the one slot is taken
    return channel, queue, message


@pytest.mark.parametrize("settle", ["ack", "reject", "requeue"])
@pytest.mark.parametrize("transport, frees_the_slot", [(RedisTransport, True), (kombu_redis.Transport, False)])
def test_an_unanswered_ack_frees_the_prefetch_slot(settle, transport, frees_the_slot, monkeypatch):
    with Connection(settings.CELERY_BROKER_URL, transport=transport) as connection:
        channel, queue, message = _delivered_message(connection, f"test-broker-{settle}")
        qos = channel.qos
        monkeypatch.setattr(qos, "_remove_from_indices", lambda *args, **kwargs: Unanswered())
        monkeypatch.setattr(qos, "restore_by_tag", lambda *args, **kwargs: Unanswered().execute())
        with pytest.raises(redis_py.exceptions.TimeoutError):
            if settle == "ack":
                message.ack()
            else:
                message.reject(requeue=settle == "requeue")
        assert qos.can_consume() is frees_the_slot
        monkeypatch.undo()
        qos._remove_from_indices(message.delivery_tag).execute()  # what Redis would hold until the restore
        qos.restore_unacked_once()  # the message goes back to its queue, which is then removed
        queue.delete()


def test_the_app_uses_the_fixed_transport_for_redis_urls():
    with celery_app.connection_for_write() as connection:
        assert connection.transport_cls == "portal.broker:RedisTransport"
        assert isinstance(connection.transport, RedisTransport)
