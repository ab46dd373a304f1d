"""Celery sends through datamate/broker.py's Redis transport: one Redis client per channel,
on the real Redis of the suite."""

import multiprocessing
import uuid

from kombu import Queue

from datamate import broker
from datamate.celery import app


def receive_all(connection, queue: Queue) -> list:
    bodies = []
    with connection.SimpleQueue(queue) as simple:
        while True:
            try:
                message = simple.get(timeout=1)
            except simple.Empty:
                return bodies
            bodies.append(message.payload)
            message.ack()


def test_messages_arrive_in_order_through_one_client_per_channel():
    queue = Queue(f"test-broker-{uuid.uuid4().hex}")
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, broker.Transport)
        channel = connection.default_channel
        producer = connection.Producer(channel)
        clients = set()
        for n in range(3):
            producer.publish({"n": n}, routing_key=queue.name, declare=[queue], serializer="json")
            clients.add(id(channel._sending_client))
        assert len(clients) == 1
        assert receive_all(connection, queue) == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_a_forked_process_sends_through_the_channel_it_inherited():
    """As a prefork pool process does: kombu gives the child new connection pools after the
    fork, and the channel's client follows them."""
    queue = Queue(f"test-broker-{uuid.uuid4().hex}")
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        producer = connection.Producer(channel)
        producer.publish({"from": "parent"}, routing_key=queue.name, declare=[queue])
        parent_client = channel._sending_client

        def publish_in_child():
            producer.publish({"from": "child"}, routing_key=queue.name)
            assert channel._sending_client is not parent_client

        child = multiprocessing.get_context("fork").Process(target=publish_in_child)
        child.start()
        child.join(30)
        assert child.exitcode == 0
        producer.publish({"from": "parent again"}, routing_key=queue.name)
        assert channel._sending_client is parent_client
        assert sorted(m["from"] for m in receive_all(connection, queue)) == ["child", "parent", "parent again"]
