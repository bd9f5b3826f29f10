"""The image builder writes valid, reproducible OCI archives, and the probe programs resolve as their libc does.

The archives are checked three ways: by reading the digest chain independently here, by the
tools that consume OCI layouts elsewhere (skopeo, umoci, containerd's ctr) when installed, and
by running the probe image's programs from its own unpacked root as nobody. The resolvers run
for real, against the host's resolver and against a small DNS server on loopback.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from conformance.cluster import images, probe_image
from conformance.cluster.images import Data, Dir, File, ImageConfig, ImageError, ImageSpec, Symlink

TIMEOUT = 60  # every subprocess here finishes in well under a second; this only stops a hang
SCHEMA = {"resolver", "seq", "name", "family", "type", "status", "addresses", "records", "canonical", "error", "elapsed_ms"}


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=TIMEOUT, check=False, **kwargs)


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    """A cache root of this run's own, so the tests neither read nor fill the user's cache."""
    return tmp_path_factory.mktemp("pcf-cache")


@pytest.fixture
def spec(tmp_path) -> ImageSpec:
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\necho tool\n")
    tool.chmod(0o750)
    return ImageSpec(
        name="registry.example.test/team/tool:1.2.3",
        aliases=("registry.example.test/team/tool:latest-build",),
        contents={
            "/usr/local/bin/tool": tool,
            "/etc/motd": Data(b"hello\n"),
            "/tmp": Dir(0o1777),
            "/bin/sh": Symlink("busybox"),
            "/bin/busybox": File(tool, 0o755),
        },
        config=ImageConfig(
            entrypoint=("/usr/local/bin/tool",),
            cmd=("--flag",),
            env=("PATH=/usr/local/bin:/bin", "MODE=test"),
            user="65534:65534",
            working_dir="/tmp",
        ),
    )


def blob(archive: tarfile.TarFile, digest: str) -> bytes:
    return archive.extractfile("blobs/sha256/" + digest.removeprefix("sha256:")).read()


def extract(archive: tarfile.TarFile, dest: Path) -> None:
    # Modes and links kept as stored; the filter argument exists from Python 3.11.4 on.
    if hasattr(tarfile, "tar_filter"):
        archive.extractall(dest, filter="tar")
    else:
        archive.extractall(dest)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- archive structure ------------------------------------------------------------------


def test_archive_digest_chain_holds_from_index_to_layer(spec, tmp_path):
    """index -> manifest -> config and layer: every digest and size matches the bytes it names.

    Read here with tarfile and hashlib alone, so the check does not trust the module's own reader.
    """
    path = tmp_path / "tool.tar"
    images.write_oci_archive(spec, path)
    with tarfile.open(path) as archive:
        assert json.loads(archive.extractfile("oci-layout").read()) == {"imageLayoutVersion": "1.0.0"}
        index = json.loads(archive.extractfile("index.json").read())
        assert index["schemaVersion"] == 2 and index["mediaType"] == images.MEDIA_INDEX
        names = [d["annotations"] for d in index["manifests"]]
        assert names == [
            {"org.opencontainers.image.ref.name": n, "io.containerd.image.name": n} for n in spec.names
        ]
        descriptor = index["manifests"][0]
        assert descriptor["platform"] == {"architecture": "amd64", "os": "linux"}
        manifest_bytes = blob(archive, descriptor["digest"])
        assert (sha256(manifest_bytes), len(manifest_bytes)) == (descriptor["digest"], descriptor["size"])

        manifest = json.loads(manifest_bytes)
        config_bytes = blob(archive, manifest["config"]["digest"])
        assert (sha256(config_bytes), len(config_bytes)) == (manifest["config"]["digest"], manifest["config"]["size"])
        [layer] = manifest["layers"]
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        layer_bytes = blob(archive, layer["digest"])
        assert (sha256(layer_bytes), len(layer_bytes)) == (layer["digest"], layer["size"])

        config = json.loads(config_bytes)
        assert config["rootfs"] == {"type": "layers", "diff_ids": [sha256(gzip.decompress(layer_bytes))]}
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer_bytes))) as tree:
            owners = {(m.uid, m.gid, m.mtime) for m in tree.getmembers()}
    assert owners == {(0, 0, 0)}


def test_layer_holds_each_entry_with_its_mode_and_parents(spec, tmp_path):
    path = tmp_path / "tool.tar"
    images.write_oci_archive(spec, path)
    entries = images.read_oci_archive(path).entries
    assert entries["/usr/local/bin/tool"] == images.LayerEntry("file", 0o750, len("#!/bin/sh\necho tool\n"))
    assert entries["/bin/busybox"].mode == 0o755
    assert entries["/etc/motd"] == images.LayerEntry("file", 0o644, 6)
    assert entries["/tmp"] == images.LayerEntry("dir", 0o1777, 0)
    assert entries["/bin/sh"] == images.LayerEntry("symlink", 0o777, 0, "busybox")
    # Parents nobody listed are still there, so the runtime never invents their modes.
    for parent in ("/usr", "/usr/local", "/usr/local/bin", "/etc", "/bin"):
        assert entries[parent] == images.LayerEntry("dir", 0o755, 0)


def test_config_carries_entrypoint_cmd_env_user_and_workdir(spec, tmp_path):
    path = tmp_path / "tool.tar"
    images.write_oci_archive(spec, path)
    info = images.read_oci_archive(path)
    assert info.names == spec.names
    assert info.config["architecture"] == "amd64" and info.config["os"] == "linux"
    assert info.config["config"] == {
        "Entrypoint": ["/usr/local/bin/tool"],
        "Cmd": ["--flag"],
        "Env": ["PATH=/usr/local/bin:/bin", "MODE=test"],
        "User": "65534:65534",
        "WorkingDir": "/tmp",
    }


def test_reader_names_a_blob_whose_bytes_do_not_match_its_digest(spec, tmp_path):
    good, bad = tmp_path / "good.tar", tmp_path / "bad.tar"
    images.write_oci_archive(spec, good)
    config_digest = images.read_oci_archive(good).config_digest
    with tarfile.open(good) as src, tarfile.open(bad, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if member.name.endswith(config_digest.split(":")[1]):
                data = data.replace(b"amd64", b"arm64")
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    with pytest.raises(ImageError, match=config_digest):
        images.read_oci_archive(bad)


def test_references_without_a_tag_are_refused():
    assert images.split_reference("registry.k8s.io/pause:3.10.1") == ("registry.k8s.io/pause", "3.10.1")
    assert images.split_reference("localhost:5000/a/b:v1") == ("localhost:5000/a/b", "v1")
    with pytest.raises(ImageError, match="not of the form"):
        images.split_reference("registry.k8s.io/pause")


# --- determinism and the cache ----------------------------------------------------------


def test_same_inputs_give_byte_identical_archives(spec, tmp_path):
    first, second = tmp_path / "1.tar", tmp_path / "2.tar"
    digest_one = images.write_oci_archive(spec, first)
    digest_two = images.write_oci_archive(spec, second)
    assert digest_one == digest_two
    assert first.read_bytes() == second.read_bytes()


def test_cache_reuses_an_archive_until_an_input_changes(spec, tmp_path):
    cache = tmp_path / "cache"
    built = images.build_image(spec, cache)
    assert built.parent == cache / "images"
    assert built.name.startswith("tool-1.2.3-") and built.suffix == ".tar"
    stamp = built.stat().st_mtime_ns
    assert images.build_image(spec, cache) == built
    assert built.stat().st_mtime_ns == stamp, "an unchanged input must not rewrite the archive"

    tool = spec.contents["/usr/local/bin/tool"]
    tool.write_text("#!/bin/sh\necho changed\n")
    rebuilt = images.build_image(spec, cache)
    assert rebuilt != built and rebuilt.is_file()

    tool.chmod(0o755)  # a mode is an input too
    assert images.archive_path(spec, cache) != rebuilt


# --- library closure --------------------------------------------------------------------


def test_library_closure_of_ls_includes_libc_and_the_loader():
    closure = images.library_closure(Path("/bin/ls"))
    assert images.LOADER in closure
    assert any(path.endswith("/libc.so.6") for path in closure)
    for in_image, host in closure.items():
        assert in_image.startswith("/") and host.is_file() and not host.is_symlink(), (in_image, host)


def test_static_binary_has_no_library_closure(resolvers):
    assert images.library_closure(resolvers["musl"]) == {}


# --- other consumers of OCI layouts -----------------------------------------------------


def test_skopeo_reads_the_archive(spec, tmp_path):
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed (apt-get install -y skopeo)")
    path = tmp_path / "tool.tar"
    single = ImageSpec(spec.name, spec.contents, spec.config)  # skopeo wants one image without a ref
    digest = images.write_oci_archive(single, path)
    shown = run(["skopeo", "inspect", f"oci-archive:{path}"])
    assert shown.returncode == 0, shown.stderr
    inspected = json.loads(shown.stdout)
    assert (inspected["Digest"], inspected["Architecture"], inspected["Os"]) == (digest, "amd64", "linux")
    config = json.loads(run(["skopeo", "inspect", "--config", f"oci-archive:{path}"]).stdout)
    assert config["config"]["User"] == "65534:65534"


def test_umoci_unpacks_the_archive_by_its_reference(spec, tmp_path):
    if shutil.which("umoci") is None:
        pytest.skip("umoci is not installed (apt-get install -y umoci)")
    path, layout, bundle = tmp_path / "tool.tar", tmp_path / "layout", tmp_path / "bundle"
    images.write_oci_archive(spec, path)
    with tarfile.open(path) as archive:
        extract(archive, layout)
    listed = run(["umoci", "ls", "--layout", layout])
    assert sorted(listed.stdout.split()) == sorted(spec.names), listed.stderr
    unpacked = run(["umoci", "unpack", "--image", f"{layout}:{spec.name}", bundle])
    assert unpacked.returncode == 0, unpacked.stderr
    tool = bundle / "rootfs" / "usr" / "local" / "bin" / "tool"
    assert tool.read_text() == "#!/bin/sh\necho tool\n"
    assert tool.stat().st_mode & 0o7777 == 0o750
    runtime = json.loads((bundle / "config.json").read_text())
    assert runtime["process"]["user"]["uid"] == 65534 and runtime["process"]["cwd"] == "/tmp"


def _containerd_binaries() -> tuple[Path, Path] | None:
    """containerd and ctr from PCF_CONTAINERD_BIN, the harness's build cache, or PATH."""
    candidates = [os.environ.get("PCF_CONTAINERD_BIN", "")]
    candidates += sorted(str(p) for p in (images.cache_root() / "bin").glob("containerd-*"))
    for folder in filter(None, candidates):
        if (Path(folder) / "containerd").is_file() and (Path(folder) / "ctr").is_file():
            return Path(folder) / "containerd", Path(folder) / "ctr"
    found = shutil.which("containerd"), shutil.which("ctr")
    return (Path(found[0]), Path(found[1])) if all(found) else None


@pytest.fixture
def containerd(tmp_path):
    """A private containerd (own root, state and socket; CRI and NRI off), stopped by its pid."""
    binaries = _containerd_binaries()
    if binaries is None or os.geteuid() != 0:
        pytest.skip("needs root and containerd + ctr (PCF_CONTAINERD_BIN, the harness's build cache, or PATH)")
    daemon, ctr = binaries
    root = tmp_path / "ctd"
    socket_path = root / "containerd.sock"
    root.mkdir()
    (root / "config.toml").write_text(
        "version = 3\n"
        f'root = "{root / "root"}"\nstate = "{root / "state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", '
        '"io.containerd.cri.v1.runtime", "io.containerd.nri.v1.nri", "io.containerd.internal.v1.opt"]\n'
        f'[grpc]\n  address = "{socket_path}"\n'
    )
    with open(root / "containerd.log", "w") as log:
        process = subprocess.Popen([daemon, "--config", root / "config.toml"], stdout=log, stderr=subprocess.STDOUT)
    try:
        ready = None
        for _ in range(200):  # up to ~10 s: containerd is normally serving within 0.2 s
            ready = run([ctr, "--address", socket_path, "version"])
            if ready.returncode == 0 or process.poll() is not None:
                break
            time.sleep(0.05)
        if ready is None or ready.returncode != 0:
            pytest.fail(
                f"private containerd did not serve {socket_path}: {ready and ready.stderr}; "
                f"log: {(root / 'containerd.log').read_text()[-2000:]}"
            )
        yield ctr, str(socket_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def test_containerd_imports_the_archive_under_every_name(spec, tmp_path, containerd):
    ctr, address = containerd
    path = tmp_path / "tool.tar"
    digest = images.write_oci_archive(spec, path)
    assert not images.image_present(spec.name, ctr, address)

    assert images.import_image(path, ctr, address, snapshotter="native") == spec.names
    for name in spec.names:
        assert images.image_present(name, ctr, address, digest=digest)
    assert not images.image_present(spec.name, ctr, address, digest="sha256:" + "0" * 64)


# --- the probe programs -----------------------------------------------------------------


@pytest.fixture(scope="session")
def resolvers(cache) -> dict[str, Path]:
    return {"musl": probe_image.compile_resolve_musl(cache), "go": probe_image.compile_resolve_go(cache)}


def lookups(binary: Path, *args: str, **kwargs) -> tuple[int, list[dict]]:
    done = run([binary, *args], **kwargs)
    assert done.returncode != 64, done.stderr
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture(scope="session")
def host_answers_nxdomain() -> None:
    """The host's own resolver must answer NXDOMAIN for .invalid, or the programs cannot be asked to."""
    import dns.resolver

    try:
        dns.resolver.Resolver().resolve("does-not-exist.invalid.", "A", lifetime=5)
    except dns.resolver.NXDOMAIN:
        return
    except Exception as error:  # noqa: BLE001 - any other outcome means the host cannot serve this test
        pytest.skip(f"the host's resolver gives no NXDOMAIN for does-not-exist.invalid: {error!r}")
    pytest.skip("the host's resolver answers does-not-exist.invalid with an address")


@pytest.mark.parametrize("resolver", ["musl", "go"])
def test_resolver_finds_localhost(resolvers, resolver):
    code, [answer] = lookups(resolvers[resolver], "-family", "4", "localhost")
    assert (code, answer["status"], answer["resolver"]) == (0, "ok", resolver)
    assert "127.0.0.1" in answer["addresses"] and answer["error"] is None


@pytest.mark.parametrize("resolver", ["musl", "go"])
def test_resolver_reports_nxdomain_for_a_name_that_does_not_exist(resolvers, resolver, host_answers_nxdomain):
    code, [answer] = lookups(resolvers[resolver], "does-not-exist.invalid")
    assert (code, answer["status"], answer["addresses"]) == (2, "nxdomain", [])
    assert answer["error"]


@pytest.mark.parametrize("resolver", ["musl", "go"])
def test_resolver_prints_one_line_per_lookup_with_its_latency(resolvers, resolver):
    code, answers = lookups(resolvers[resolver], "-count", "5", "localhost")
    assert code == 0
    assert [a["seq"] for a in answers] == [1, 2, 3, 4, 5]
    assert all(set(a) == SCHEMA and a["elapsed_ms"] >= 0 for a in answers), answers


@pytest.mark.parametrize("resolver", ["musl", "go"])
def test_resolver_refuses_a_bad_family(resolvers, resolver):
    assert run([resolvers[resolver], "-family", "5", "localhost"]).returncode == 64


ZONE = {
    ("probe.example.test.", "A"): ["192.0.2.10"],
    ("probe.example.test.", "AAAA"): ["2001:db8::10"],
    ("_dns._udp.example.test.", "SRV"): ["0 100 53 probe.example.test."],
    ("alias.example.test.", "CNAME"): ["probe.example.test."],
    ("10.2.0.192.in-addr.arpa.", "PTR"): ["probe.example.test."],
}


@pytest.fixture(scope="module")
def zone_server():
    """A DNS server on 127.0.0.1 answering ZONE (CNAMEs followed), NXDOMAIN for any other name."""
    import dns.message
    import dns.rcode
    import dns.rdatatype
    import dns.rrset

    def answer(wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        question = query.question[0]
        name, rdtype = question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype)
        if not any(owner == name for owner, _ in ZONE):
            response.set_rcode(dns.rcode.NXDOMAIN)
        target = ZONE.get((name, "CNAME"))
        if target and rdtype != "CNAME":
            response.answer.append(dns.rrset.from_text(name, 30, "IN", "CNAME", *target))
            name = target[0]
        if (name, rdtype) in ZONE:
            response.answer.append(dns.rrset.from_text(name, 30, "IN", rdtype, *ZONE[(name, rdtype)]))
        return response.to_wire()

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                wire, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            sock.sendto(answer(wire), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    sock.close()


@pytest.mark.parametrize(
    "args, addresses, records",
    [
        (["probe.example.test."], {"192.0.2.10", "2001:db8::10"}, []),
        (["-family", "6", "probe.example.test."], {"2001:db8::10"}, []),
        (["-type", "A", "alias.example.test."], {"192.0.2.10"}, []),
        (["-type", "SRV", "_dns._udp.example.test."], set(), ["0 100 53 probe.example.test."]),
        (["-type", "PTR", "192.0.2.10"], set(), ["probe.example.test."]),
        (["-type", "CNAME", "alias.example.test."], set(), ["probe.example.test."]),
    ],
    ids=["any", "aaaa", "a-through-cname", "srv", "ptr", "cname"],
)
def test_go_resolver_answers_each_type_from_a_named_server(resolvers, zone_server, args, addresses, records):
    code, [answer] = lookups(resolvers["go"], "-server", zone_server, "-timeout", "5s", *args)
    assert (code, answer["status"], answer["error"]) == (0, "ok", None)
    assert (set(answer["addresses"]), answer["records"]) == (addresses, records)


def test_go_resolver_reports_nxdomain_from_a_named_server(resolvers, zone_server):
    code, [answer] = lookups(resolvers["go"], "-server", zone_server, "missing.example.test.")
    assert (code, answer["status"]) == (2, "nxdomain")


# --- the two images ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def probe_archive(cache) -> Path:
    return probe_image.build_probe_image(cache)


def test_probe_image_holds_three_resolvers_and_runs_as_nobody(probe_archive):
    info = images.read_oci_archive(probe_archive)
    assert info.names == (probe_image.PROBE_IMAGE,)
    assert info.config["config"]["User"] == "65534:65534"
    entries = info.entries
    for path in ("/usr/bin/getent", "/usr/bin/dig", "/usr/local/bin/resolve-musl", "/usr/local/bin/resolve-go",
                 "/bin/busybox", images.LOADER):
        assert entries[path].kind == "file" and entries[path].mode & 0o005 == 0o005, path
    for applet in ("sh", "nc", "wget"):
        assert entries[f"/bin/{applet}"] == images.LayerEntry("symlink", 0o777, 0, "busybox")
    assert entries["/tmp"].mode == 0o1777


def test_probe_image_is_rebuilt_only_when_its_inputs_change(cache, probe_archive):
    stamp = probe_archive.stat().st_mtime_ns
    assert probe_image.build_probe_image(cache) == probe_archive
    assert probe_archive.stat().st_mtime_ns == stamp


@pytest.fixture(scope="session")
def probe_root(probe_archive, tmp_path_factory) -> Path:
    """The probe image's layer unpacked, with the files a kubelet would mount into a pod."""
    root = tmp_path_factory.mktemp("probe-root")
    info = images.read_oci_archive(probe_archive)
    with tarfile.open(probe_archive) as archive:
        layer = gzip.decompress(blob(archive, info.layer_digests[0]))
    with tarfile.open(fileobj=io.BytesIO(layer)) as tree:
        extract(tree, root)
    for name in ("hosts", "resolv.conf"):
        shutil.copyfile(f"/etc/{name}", root / "etc" / name)
    root.chmod(0o755)  # a container's / is 0755; pytest makes its directories 0700
    return root


@pytest.mark.parametrize(
    "command, expected",
    [
        (["/usr/bin/getent", "hosts", "localhost"], "127.0.0.1"),
        (["/usr/bin/getent", "passwd", "nobody"], "nobody:x:65534:65534"),
        (["/usr/bin/dig", "-v"], "DiG 9"),
        (["/usr/local/bin/resolve-musl", "localhost"], '"status":"ok"'),
        (["/usr/local/bin/resolve-go", "localhost"], '"status":"ok"'),
        (["/bin/sh", "-c", "id -u; wget --help 2>&1 | head -1; nc --help 2>&1 | head -1"], "65534"),
    ],
    ids=["getent", "passwd", "dig", "musl", "go", "busybox"],
)
def test_probe_image_programs_run_from_its_own_root_as_nobody(probe_root, command, expected):
    """Each program starts inside the image's root alone, which proves its library closure is complete."""
    if os.geteuid() != 0 or shutil.which("chroot") is None:
        pytest.skip("needs root and chroot to enter the unpacked image")
    done = run(["chroot", "--userspec=65534:65534", probe_root, *command])
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout + done.stderr


def test_pause_image_has_upstreams_shape_and_version(cache):
    pin = probe_image.pause_pin()
    modcache = run(["go", "env", "GOMODCACHE"]).stdout.strip()
    if not (Path(modcache) / f"k8s.io/kubernetes@{pin.kubernetes_version}" / "build/pause/linux/pause.c").is_file():
        pytest.skip(f"k8s.io/kubernetes@{pin.kubernetes_version} is not in the module cache yet (nox -s cluster fetches it)")
    archive = probe_image.build_pause_image(pin, cache=cache)
    info = images.read_oci_archive(archive)
    assert info.names == (pin.name,)
    assert set(info.entries) == {"/pause"} and info.entries["/pause"].mode == 0o755
    assert info.config["config"]["Entrypoint"] == ["/pause"]
    assert info.config["config"]["User"] == "65535:65535"

    binary = probe_image.compile_pause(pin, cache)
    assert images.library_closure(binary) == {}, "pause must be static: the image has no libraries"
    tag = pin.name.rsplit(":", 1)[1]
    assert run([binary, "-v"]).stdout.strip() == f"pause.c v{tag}-{pin.kubernetes_version}"


def _rootfs(tmp_path) -> Path:
    """A root filesystem tar shaped like mmdebstrap's: ./-prefixed names, a merged /bin, a device."""
    path = tmp_path / "rootfs.tar"
    with tarfile.open(path, "w") as out:
        for name, kind, extra in (("./", tarfile.DIRTYPE, None), ("./usr/", tarfile.DIRTYPE, None),
                                  ("./usr/bin/", tarfile.DIRTYPE, None), ("./bin", tarfile.SYMTYPE, "usr/bin"),
                                  ("./dev/", tarfile.DIRTYPE, None), ("./dev/null", tarfile.CHRTYPE, None),
                                  ("./etc/", tarfile.DIRTYPE, None)):
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, 0o755
            if extra:
                info.linkname = extra
            out.addfile(info)
        for name, body in (("./usr/bin/dig", b"dig"), ("./etc/passwd", b"root:x:0:0::/root:/bin/sh\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid = len(body), 0o755, 0
            out.addfile(info, io.BytesIO(body))
    return path


def test_an_image_on_a_root_filesystem_keeps_its_members_and_replaces_what_it_supplies(tmp_path):
    base = _rootfs(tmp_path)
    spec = ImageSpec("registry.example/tools:1", base=base,
                     contents={"/agnhost": Data(b"x", 0o755), "/etc/passwd": Data(b"root:x:0:0::/root:/bin/sh\nu:x:1:1::/:/\n")})
    info = images.read_oci_archive(images.build_image(spec, tmp_path / "cache"))
    assert info.entries["/bin"].kind == "symlink" and info.entries["/bin"].target == "usr/bin"
    assert info.entries["/usr/bin/dig"].kind == "file" and info.entries["/agnhost"].kind == "file"
    assert "/dev/null" not in info.entries, "device nodes are the runtime's to make"
    assert info.entries["/etc/passwd"].size == len(b"root:x:0:0::/root:/bin/sh\nu:x:1:1::/:/\n")


def test_a_file_below_a_symlinked_directory_of_the_root_filesystem_is_refused(tmp_path):
    spec = ImageSpec("registry.example/tools:1", base=_rootfs(tmp_path), contents={"/bin/sh": Data(b"x")})
    with pytest.raises(ImageError, match="/bin is a symlink"):
        images.build_image(spec, tmp_path / "cache")


def test_the_root_filesystem_is_an_input_of_the_cache_key(tmp_path):
    base = _rootfs(tmp_path)
    spec = ImageSpec("registry.example/tools:1", base=base, contents={"/a": Data(b"x")})
    before = images.inputs_digest(spec)
    with tarfile.open(base, "a") as out:
        info = tarfile.TarInfo("./usr/bin/curl")
        out.addfile(info, io.BytesIO(b""))
    assert images.inputs_digest(spec) != before
