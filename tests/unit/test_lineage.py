"""Run keys and the version tags that keep them honest (llink.lineage)."""

import ast
import hashlib
import importlib
import inspect
import textwrap

import pytest

from llink.lineage import TRACKED, VERSIONS, changed, content_key, run_key

# The source hash of each tag's functions (comments and docstrings excluded), recorded with the
# tag's version. When a test below fails, the computation behind a key changed: bump the tag in
# llink.lineage.VERSIONS (every key it feeds changes, so nothing stale is reused), then record the
# new (version, hash) pair the failure prints here.
RECORDED = {
    "readout": ("windows-v1", "d857400ef543cb26"),
    "batching": ("same-length-v1", "4ddc5c6cc93cbc82"),
    "teacher": ("teacher-v1", "da79ef4fad386eac"),  # norm zscore_length added; none and zscore unchanged
    "stage_a": ("stage-a-v1", "cbd62a525faa69c4"),  # stage_a_tensors passes lengths for zscore_length; others unchanged
    "spans": ("spans-v1", "277466ac2557ab80"),
    "stage_b": ("stage-b-v4", "774332a9e909ac9e"),  # English-only examples get english_hints; zscore_length teachers get lengths; read(english=) passes flags to hints
    "direct": ("direct-v2", "7bb614a8b4c11501"),
    "sweep": ("sweep-v2", "8326b289628c3a42"),  # probes zscore_length too; other probes unchanged
    "usage": ("usage-v2", "804c1526301aa6cf"),
    "generation": ("generation-v3", "b4a144339e680ec6"),  # extract_hints shares its scan with english_hints; english_in systems added; answers unchanged
    "comprehend": ("comprehend-v2", "7d116f5dc3f7bdc1"),
    "synth": ("synth-v1", "26d4679aa6279c3d"),  # passages= adds requests; each prompt's answer is unchanged
}


def _resolve(ref: str):
    module, qual = ref.split(":")
    obj = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def _code_hash(refs: list[str]) -> str:
    """ast of each function without docstrings: a comment or a reworded docstring is not a change."""
    h = hashlib.sha256()
    for ref in sorted(refs):
        obj = _resolve(ref)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):  # a table, such as synth's task instructions
            h.update(ref.encode() + b"\0" + repr(obj).encode() + b"\0")
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        h.update(ref.encode() + b"\0" + ast.unparse(tree).encode() + b"\0")
    return h.hexdigest()[:16]


def test_every_tag_is_tracked_and_recorded():
    assert set(VERSIONS) == set(TRACKED) == set(RECORDED)


@pytest.mark.parametrize("tag", sorted(TRACKED))
def test_a_tracked_computation_does_not_change_under_the_same_tag(tag):
    now = _code_hash(TRACKED[tag])
    version, recorded = RECORDED[tag]
    if VERSIONS[tag] != version:
        pytest.fail(f"tag {tag!r} is now {VERSIONS[tag]!r}: record it in RECORDED as ({VERSIONS[tag]!r}, {now!r})")
    assert now == recorded, (f"the code behind {tag!r} ({', '.join(TRACKED[tag])}) changed while its tag stayed {version!r}: "
                             f"if what it computes changed, bump VERSIONS[{tag!r}] in llink/lineage.py; either way record "
                             f"({VERSIONS[tag]!r}, {now!r}) in RECORDED")


def test_the_hash_ignores_comments_and_docstrings_but_not_code(tmp_path, monkeypatch):
    mod = tmp_path / "lineage_probe.py"
    monkeypatch.syspath_prepend(str(tmp_path))

    def hash_of(src):
        mod.write_text(src)
        importlib.invalidate_caches()
        import sys

        sys.modules.pop("lineage_probe", None)
        return _code_hash(["lineage_probe:f"])

    base = hash_of("def f(x):\n    return x + 1\n")
    assert hash_of('def f(x):\n    """Add one."""\n    # why: because\n    return x + 1\n') == base
    assert hash_of("def f(x):\n    return x + 2\n") != base


def test_a_key_is_its_declared_parts_and_names_what_changed():
    a, parts = run_key("stage_b", {"steps": 3, "lr": 1e-3}, {"examples": content_key([("km", "en")])}, {"decoder": "d"}, upstream="A")
    assert run_key("stage_b", {"lr": 1e-3, "steps": 3}, {"examples": content_key([("km", "en")])}, {"decoder": "d"}, upstream="A")[0] == a
    b, other = run_key("stage_b", {"steps": 4, "lr": 1e-3}, {"examples": content_key([("km", "en2")])}, {"decoder": "d"}, upstream="B")
    assert b != a
    assert changed(parts, other) == ["settings.steps: 3 -> 4", "inputs.examples changed", "upstream: 'A' -> 'B'"]
    assert parts["versions"] == {"stage_b": VERSIONS["stage_b"]}
