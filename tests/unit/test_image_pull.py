"""A pod whose image cannot be pulled ends the pod waits at once, naming the image and the fix."""
from __future__ import annotations

import time

import pytest
from kubernetes import client as k8s

from conformance import pods

MIRRORED = "192.168.77.2:5000/pcf/localhost/platform-conformance/probe:0.1.0"


def pod(waiting: str | None = None, message: str = "", init_waiting: str | None = None,
        image: str = MIRRORED) -> k8s.V1Pod:
    def status(name: str, reason: str | None) -> k8s.V1ContainerStatus:
        state = (k8s.V1ContainerState(waiting=k8s.V1ContainerStateWaiting(reason=reason, message=message))
                 if reason else k8s.V1ContainerState(running=k8s.V1ContainerStateRunning()))
        return k8s.V1ContainerStatus(name=name, image=image, image_id="", ready=reason is None,
                                     restart_count=0, state=state)

    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="probe", namespace="pcf-x"),
        spec=k8s.V1PodSpec(node_name="pcf-node", containers=[k8s.V1Container(name="probe")]),
        status=k8s.V1PodStatus(
            phase="Pending",
            init_container_statuses=[status("init", init_waiting)] if init_waiting else None,
            container_statuses=[status("probe", waiting)]))


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"])
def test_a_pull_failure_is_seen_in_the_pod_status(reason):
    [failure] = pods.PodView.of(pod(reason, "not found")).pull_failures
    assert failure == pods.PullFailure("probe", MIRRORED, reason, "not found")


@pytest.mark.parametrize("reason", [None, "ContainerCreating", "CrashLoopBackOff", "CreateContainerConfigError"])
def test_other_states_are_not_pull_failures(reason):
    view = pods.PodView.of(pod(reason))
    assert view.pull_failures == ()
    assert view.check_pull() is view


def test_an_init_container_pull_failure_counts():
    [failure] = pods.pull_failures(pod(None, "manifest unknown", init_waiting="ErrImagePull"))
    assert failure.container == "init" and failure.reason == "ErrImagePull"


def test_the_message_names_the_image_the_reason_and_the_fix():
    view = pods.PodView.of(pod("ImagePullBackOff", f'Back-off pulling image "{MIRRORED}"'))
    with pytest.raises(pods.ImageUnavailable) as caught:
        view.check_pull()
    text = str(caught.value)
    assert "pod pcf-x/probe on pcf-node cannot pull its image" in text
    assert f"image {MIRRORED} (container probe): ImagePullBackOff" in text
    assert "nox -s publish-images" in text and "images.registry_prefix" in text and "--list-images" in text


def test_waits_end_at_the_first_pull_failure_not_at_their_timeout(monkeypatch):
    seen = iter([pod("ContainerCreating"), pod("ErrImagePull", "failed to resolve reference")])
    monkeypatch.setattr(pods, "view", lambda api, namespace, name: pods.PodView.of(next(seen)))
    t0 = time.monotonic()
    with pytest.raises(pods.ImageUnavailable, match="ErrImagePull: failed to resolve reference"):
        pods.wait_pod(None, "pcf-x", "probe", timeout=60, interval=0.01)
    assert time.monotonic() - t0 < 5
