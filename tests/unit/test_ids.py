import time

from darkroom.ids import created_at_of, is_task_id, new_task_id


def test_id_is_24_lowercase_hex_starting_with_created_at():
    now = 1753280579
    task_id = new_task_id(now)
    assert is_task_id(task_id)
    assert task_id[:8] == "6880f043"  # the seed's own example
    assert created_at_of(task_id) == now


def test_ids_are_unique_and_their_random_part_differs():
    ids = [new_task_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    random_parts = {task_id[8:18] for task_id in ids}
    assert len(random_parts) > 19_990  # drawn afresh per id, not once per process


def test_id_time_is_now():
    assert abs(created_at_of(new_task_id()) - time.time()) < 2
