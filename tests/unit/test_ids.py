import time
import uuid

from jobscheduler.ids import new_id


def test_ids_are_uuid7_and_time_ordered():
    first = new_id()
    time.sleep(0.002)
    later = [new_id() for _ in range(100)]
    assert first.version == 7 and first.variant == uuid.RFC_4122
    assert all(first < i for i in later)
    assert len(set(later)) == 100
    assert abs((first.int >> 80) - time.time_ns() // 1_000_000) < 1000
