"""Reading who a container's processes run as, from the output of runtime.IDENTITY_SCRIPT."""
from __future__ import annotations

from conformance.probes import runtime

# What busybox `id` and the kernel's /proc/1/status print in a pod run as 4321:4322.
OUTPUT = "exec 4321 4322\nUid:\t4321\t4321\t4321\t4321\nGid:\t4322\t4322\t4322\t4322\n"


def test_reads_the_exec_and_main_process_ids():
    found = runtime.parse_identity(OUTPUT)
    assert (found.exec_ids, found.main_uids, found.main_gids) == ((4321, 4322), (4321,) * 4, (4322,) * 4)


def test_a_main_process_left_as_the_image_user_shows():
    found = runtime.parse_identity("exec 4321 4322\nUid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\n")
    assert found.main_uids == (65534,) * 4


def test_missing_output_reads_as_nothing_found():
    found = runtime.parse_identity("sh: id: not found\n")
    assert (found.exec_ids, found.main_uids, found.main_gids) == (None, (), ())
