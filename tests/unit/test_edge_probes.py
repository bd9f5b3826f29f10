"""The edge probes' own logic: address ranges, test-pool slicing, the outside HTTP(S) client,
the ingress adapter's certificate, and the causes a failure leads with."""
from __future__ import annotations

import http.server
import ssl
import threading

import pytest

from conformance import profile as profiles
from conformance.probes import ingress as ing
from conformance.probes import loadbalancer as lb
from conformance.probes import outside_http


def test_ranges_compare_as_addresses_however_spelled():
    assert lb.same_ranges(["192.168.77.200-192.168.77.219", "fd00:77::200-fd00:77::219"],
                          ["fd00:77::200 - fd00:77::219", "192.168.77.200-192.168.77.219"])
    assert lb.same_ranges(["10.0.0.0/30"], ["10.0.0.0-10.0.0.3"])
    assert not lb.same_ranges(["192.168.77.200-192.168.77.219"], ["192.168.77.200-192.168.77.218"])
    assert lb.within("fd00:77::21a", ["fd00:77::200-fd00:77::21f"]) and not lb.within("10.0.0.9", ["10.0.0.0/30"])


def test_test_ranges_leave_a_disjoint_address_per_purpose_at_the_top():
    r = lb.split_test_ranges(["192.168.77.220-192.168.77.229", "fd00:77::220-fd00:77::229"])
    assert r.shared == ("192.168.77.220-192.168.77.227", "fd00:77::220-fd00:77::227")
    assert r.spare == {"exhaust": ("192.168.77.228-192.168.77.228", "fd00:77::228-fd00:77::228"),
                       "release": ("192.168.77.229-192.168.77.229", "fd00:77::229-fd00:77::229")}
    assert r.families == ("IPv4", "IPv6")
    with pytest.raises(ValueError, match="a run needs at least 3 of each family"):
        lb.split_test_ranges(["10.0.0.1-10.0.0.2"])


def test_profile_rejects_a_range_that_runs_backwards_or_mixes_families():
    with pytest.raises(profiles.ProfileError) as caught:
        profiles.load("local", ["components.metallb.test_addresses=[10.0.0.9-10.0.0.1]"])
    assert caught.value.path == "components.metallb.test_addresses[0]"
    assert "lower to a higher address of one family" in str(caught.value)
    with pytest.raises(profiles.ProfileError, match="not namespace/name"):
        profiles.load("local", ["components.metallb.pinned=[{address: 10.0.0.1, service: envoy}]"])


def test_a_pending_service_explains_itself_with_metallb_s_last_word():
    svc = lb.LoadBalancer("ns", "web", True, ("IPv4", "IPv6"), (), (
        "IPAllocated: Assigned IP", "AllocationFailed: Failed to allocate IP for \"ns/web\": no available IPs"))
    assert not svc.complete and "no available IPs" in svc.pending_reason
    assert str(svc).startswith("Service ns/web (IPv4/IPv6): addresses none; announced by no speaker; MetalLB said:")


def test_an_unanswered_address_names_the_missing_speakers_first():
    svc = lb.LoadBalancer("ns", "web", True, ("IPv4",), ("192.168.77.220",))
    assert lb.unanswered_because(svc, lb.Speakers("metallb-system", True, 0, 0)).startswith(
        "DaemonSet metallb-system/speaker: 0 of 0 speakers ready: nothing announces")
    assert lb.unanswered_because(svc, lb.Speakers("metallb-system", True, 1, 1)).startswith("no speaker announces")


def test_a_stopped_proxy_is_the_controller_s_trouble():
    found = ing.Controller("projectcontour", (ing.Workload("Deployment", "contour", 1, 1),
                                              ing.Workload("DaemonSet", "envoy", 0, 0)),
                           "envoy", True, "LoadBalancer", ("192.168.77.200",), "contour", "projectcontour.io/ingress-controller")
    assert found.trouble == "DaemonSet projectcontour/envoy: 0 of 0 ready: the ingress controller is not serving"
    healthy = ing.Controller("c", (), "envoy", True, "LoadBalancer", ("1.2.3.4",), "contour", "x")
    assert healthy.trouble is None


class _Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the standard library's name
        if self.path == "/go":
            self.send_response(301)
            self.send_header("Location", f"https://{self.headers['Host']}/go")
            self.end_headers()
            return
        body = f"{self.headers['Host']} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    cert = ing.self_signed(("app.example.test",))
    (tmp_path / "c.pem").write_text(cert.cert_pem + cert.key_pem)
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Echo)
    plain = http.server.HTTPServer(("127.0.0.1", 0), _Echo)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c.pem")
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    for s in (httpd, plain):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield cert, httpd.server_address[1], plain.server_address[1]
    for s in (httpd, plain):
        s.shutdown()


def test_the_client_sends_host_and_sni_and_shows_the_served_certificate(server):
    cert, tls_port, plain_port = server
    got = outside_http.request("127.0.0.1", "app.example.test", "/x", tls=True, port=tls_port)
    assert (got.status, got.body, got.served_names, got.served_sha256) == (
        200, "app.example.test /x", ("app.example.test",), cert.sha256)
    moved = outside_http.request("127.0.0.1", "app.example.test", "/go", port=plain_port)
    assert (moved.status, moved.location) == (301, "https://app.example.test/go")
    assert str(moved).startswith(f"GET http://127.0.0.1:{plain_port}/go (Host app.example.test) from runner: HTTP 301 ->")


def test_no_answer_is_evidence_not_an_exception():
    got = outside_http.request("127.0.0.1", "x.test", port=9, timeout_s=1)
    assert got.status is None and "ConnectionRefusedError" in got.error
