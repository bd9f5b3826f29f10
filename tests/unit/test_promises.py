"""The promise rules at collection, and the generated catalogue with its staleness check."""
from __future__ import annotations

import pytest

from conformance import promises
from conformance.promises import PromiseRecord
from tinysuite import project, run

GOOD = "A pod MUST resolve a Service's name."


@pytest.mark.parametrize("components,args,doc,expected", [
    ([], [("dns/a/b",)], GOOD, "has no component marker"),
    (["dns", "networking"], [("dns/a/b",)], GOOD, "has 2 component markers (dns, networking)"),
    (["dns"], [], GOOD, "has no promise id"),
    (["dns"], [("dns/a/b",), ("dns/c/d",)], GOOD, "exactly one promise marker"),
    (["dns"], [("dns/a/b", "extra")], GOOD, "exactly one promise marker"),
    (["dns"], [("DNS resolves",)], GOOD, "is not of the form"),
    (["dns"], [("networking/a/b",)], GOOD, "must start with dns/"),
    (["control_plane"], [("control_plane/a/b",)], GOOD, "is not of the form"),
    (["dns"], [("dns/a/b",)], None, "has no docstring"),
    (["dns"], [("dns/a/b",)], "Resolves names.\n\nA pod MUST ...", "has no MUST"),
])
def test_each_rule(components, args, doc, expected):
    found = promises.problems(components, args, doc)
    assert len(found) == 1 and expected in found[0]


def test_a_good_test_has_no_problems():
    assert promises.problems(["control_plane"], [("control-plane/api/readyz",)], f"\n    {GOOD}\n\n    Why.\n") == []
    assert promises.must_sentence(f"\n   {GOOD}\n   more") == GOOD


BROKEN = '''
import pytest


@pytest.mark.promise("dns/a/b")
def test_without_component():
    """A pod MUST resolve."""


@pytest.mark.dns
def test_without_promise():
    """A pod MUST resolve."""


@pytest.mark.dns
@pytest.mark.promise("dns/a/c")
def test_without_must():
    """Resolves."""


@pytest.mark.dns
@pytest.mark.promise("dns/a/d")
def test_uses_a_namespace_without_saying_it_writes(namespace):
    """A pod MUST resolve."""
'''


def test_collection_fails_with_one_line_per_broken_test(tmp_path):
    root = project(tmp_path, {"suites/test_dns.py": BROKEN})
    proc = run(root)
    assert proc.returncode == 2
    out = proc.stdout
    assert "suite tests break the promise rules" in out
    assert "test_without_component: has no component marker" in out
    assert "test_without_promise: has no promise id" in out
    assert "test_without_must: docstring's first line 'Resolves.' has no MUST" in out
    assert "test_uses_a_namespace_without_saying_it_writes: uses namespace, which creates objects" in out
    assert "Traceback" not in out


def test_a_promise_id_belongs_to_one_test(tmp_path):
    test = '''
    import pytest

    @pytest.mark.dns
    @pytest.mark.promise("dns/a/b")
    def test_{n}():
        """A pod MUST resolve."""
    '''
    root = project(tmp_path, {"suites/test_one.py": test.replace("{n}", "one"),
                              "suites/test_two.py": test.replace("{n}", "two")})
    proc = run(root)
    assert proc.returncode == 2
    assert "promise id 'dns/a/b' is already the promise of suites/test_one.py::test_one" in proc.stdout


def test_a_covers_marker_is_checked_at_collection(tmp_path):
    root = project(tmp_path, {"suites/test_dns.py": '''
        import pytest

        @pytest.mark.dns
        @pytest.mark.covers("storage/expansion")
        @pytest.mark.promise("dns/a/b")
        def test_unknown_kind():
            """A pod MUST resolve."""

        @pytest.mark.dns
        @pytest.mark.covers("storage/class", by="storage_class")
        @pytest.mark.promise("dns/a/c")
        def test_by_a_missing_parameter():
            """A pod MUST resolve."""

        @pytest.mark.dns
        @pytest.mark.covers("cluster/dual-stack")
        @pytest.mark.promise("dns/a/d")
        @pytest.mark.parametrize("family", [4, 6])
        def test_good(family):
            """A pod MUST resolve."""
        '''})
    proc = run(root)
    assert proc.returncode == 2
    assert ("test_unknown_kind: covers('storage/expansion') names no capability kind; use "
            "@pytest.mark.covers(\"<kind>\")") in proc.stdout
    assert "test_by_a_missing_parameter: covers('storage/class', by='storage_class'): the test has no parameter" in proc.stdout
    assert "test_good" not in proc.stdout


def test_unknown_marker_is_rejected(tmp_path):
    root = project(tmp_path, {"suites/test_dns.py": '''
        import pytest

        @pytest.mark.dns
        @pytest.mark.dsn_typo
        @pytest.mark.promise("dns/a/b")
        def test_x():
            """A pod MUST resolve."""
        '''})
    proc = run(root)
    assert proc.returncode != 0 and "'dsn_typo' not found in `markers`" in proc.stdout


SUITE = '''
import pytest

pytestmark = pytest.mark.dns


class TestLookups:
    @pytest.mark.promise("dns/resolve/service-fqdn")
    @pytest.mark.parametrize("resolver", ["glibc", "musl"])
    def test_pod_resolves_service_fqdn(self, resolver):
        """A pod MUST resolve a Service's fully qualified name | through any resolver.

        Three resolvers, because applications use all three.
        """


@pytest.mark.writes
@pytest.mark.slow
@pytest.mark.promise("dns/records/headless")
def test_headless_records():
    """A headless Service MUST have a record per ready pod."""
'''


def test_catalogue_is_generated_and_checked(tmp_path, capsys):
    root = project(tmp_path, {"suites/test_dns.py": SUITE})
    assert promises.main(["--check", "--root", str(root)]) == 1  # missing: stale
    assert promises.main(["--root", str(root)]) == 0
    text = (root / "suites" / "PROMISES.md").read_text()
    assert "2 promises in 1 components." in text
    assert "## dns: cluster DNS" in text
    assert ("| `dns/resolve/service-fqdn` | A pod MUST resolve a Service's fully qualified name \\| through any "
            "resolver. | `suites/test_dns.py::TestLookups::test_pod_resolves_service_fqdn` |  |") in text
    assert ("| `dns/records/headless` | A headless Service MUST have a record per ready pod. | "
            "`suites/test_dns.py::test_headless_records` | `slow`, `writes` |") in text
    assert promises.main(["--check", "--root", str(root)]) == 0
    (root / "suites" / "test_dns.py").write_text(SUITE.replace("per ready pod", "per pod"))
    assert promises.main(["--check", "--root", str(root)]) == 1
    assert "is stale" in capsys.readouterr().err


def test_catalogue_of_a_broken_suite_is_an_error(tmp_path, capsys):
    root = project(tmp_path, {"suites/test_dns.py": BROKEN})
    assert promises.main(["--check", "--root", str(root)]) == 2
    assert "has no component marker" in capsys.readouterr().err


def test_render_orders_components_like_the_catalogue():
    records = [PromiseRecord("dns/a/b", "dns", "suites/test_dns.py::test_b", "X MUST b.", ()),
               PromiseRecord("control-plane/a/a", "control_plane", "suites/test_cp.py::test_a", "Y MUST a.", ())]
    text = promises.render(records)
    assert text.index("## control_plane") < text.index("## dns")
