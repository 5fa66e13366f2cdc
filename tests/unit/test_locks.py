import threading
import time

from pipelines.locks import exclusive_lock


def test_a_second_holder_waits_until_the_first_releases(tmp_path):
    path = tmp_path / "locks" / "record.lock"  # the folder is created
    held, order = threading.Event(), []

    def first():
        with exclusive_lock(path):
            held.set()
            time.sleep(0.3)
            order.append("first released")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait(5)
    started = time.monotonic()
    with exclusive_lock(path):  # another open file description: flock makes it wait
        order.append("second acquired")
        waited = time.monotonic() - started
    thread.join(5)
    assert order == ["first released", "second acquired"] and waited >= 0.2
