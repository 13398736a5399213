"""docs/ is generated from the schemas by tools/gendocs.py: it must be current and complete."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tfprovider_immuta_pg.framework.provider import DataSource, Function, Parameter
from tfprovider_immuta_pg.framework.schema import (
    LIST,
    MAP,
    SET,
    Attribute,
    Block,
    NestedAttribute,
    NestedBlock,
    OneOf,
    Schema,
)
from tfprovider_immuta_pg.framework.types import BOOL, NUMBER, STRING, List
from tfprovider_immuta_pg.immuta.provider import ImmutaProvider

ROOT = Path(__file__).resolve().parents[1]
GENDOCS = ROOT / "tools" / "gendocs.py"
DOCS = ROOT / "docs"


def _gendocs():
    spec = importlib.util.spec_from_file_location("gendocs_under_test", GENDOCS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gendocs = _gendocs()
PROVIDER = ImmutaProvider()


def walk(block: Block, path: tuple[str, ...] = ()):
    """(path, attribute) for every attribute, nested attributes and blocks included."""
    for name, attr in block.attributes.items():
        yield (*path, name), attr
        if isinstance(attr, NestedAttribute):
            yield from walk(attr.block, (*path, name))
    for name, nested in block.blocks.items():
        yield from walk(nested.block, (*path, name))


def section(page: str, path: tuple[str, ...]) -> str:
    """The part of a page documenting the block at `path` (top level: the Schema section)."""
    if not path:
        start = page.index("## Schema")
    else:
        start = page.index(f"### Nested Schema for `{'.'.join(path)}`")
    rest = page[page.index("\n", start) + 1 :]  # after the heading line
    ends = [m.start() for m in re.finditer(r"^(### Nested Schema|## )", rest, re.M)]
    return rest[: ends[0]] if ends else rest


def attribute_lines(page: str, path: tuple[str, ...]) -> dict[str, str]:
    text = section(page, path)
    return {m.group(1): m.group(0) for m in re.finditer(r"^- `([^`]+)` \(.*$", text, re.M)}


def test_committed_docs_are_current():
    res = subprocess.run(
        [sys.executable, str(GENDOCS), "--check"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, (
        "docs/ is stale; run `.venv/bin/python tools/gendocs.py` and commit docs/\n"
        + res.stdout
        + res.stderr
    )


def test_generation_is_deterministic():
    assert gendocs.generate() == gendocs.generate()


def pages_for_schemas():
    yield "index.md", PROVIDER.schema.block
    for type_name, resource in sorted(PROVIDER.resources.items()):
        yield f"resources/{type_name.removeprefix('immuta_')}.md", resource.schema.block
    for type_name, source in sorted(PROVIDER.data_sources.items()):
        yield f"data-sources/{type_name.removeprefix('immuta_')}.md", source.schema.block


@pytest.mark.parametrize(
    ("page", "block"), list(pages_for_schemas()), ids=[p for p, _ in pages_for_schemas()]
)
def test_every_attribute_is_documented(page: str, block: Block):
    text = (DOCS / page).read_text()
    for path, attr in walk(block):
        lines = attribute_lines(text, path[:-1])
        name = path[-1]
        assert name in lines, f"docs/{page} does not document `{'.'.join(path)}`"
        line = lines[name]
        flags = line.split(") ", 1)[0]
        assert ("Sensitive" in flags) == attr.sensitive, f"docs/{page}: {line}"
        if attr.description:
            first_words = " ".join(attr.description.split()[:4])
            assert first_words in line, f"docs/{page}: description missing in {line}"
        for variable in attr.env:
            assert f"`{variable}`" in line, f"docs/{page}: no {variable} fallback in {line}"
        for validator in attr.validators:
            for choice in getattr(validator, "choices", ()):
                assert f"`{choice}`" in line
        if attr.default is not None:
            assert "Defaults to" in line


def test_resource_pages_follow_registry_layout():
    for type_name in PROVIDER.resources:
        text = (DOCS / "resources" / f"{type_name.removeprefix('immuta_')}.md").read_text()
        assert text.startswith(f'---\npage_title: "{type_name} Resource - immuta"\n')
        assert 'subcategory: ""' in text and "description: |-" in text
        assert f"# {type_name} (Resource)" in text
        assert "## Example Usage" in text and f'resource "{type_name}"' in text
        assert "### Required" in text and "### Read-Only" in text
        assert "## Import" in text and f"terraform import {type_name}." in text


def test_provider_page():
    text = (DOCS / "index.md").read_text()
    lines = attribute_lines(text, ())
    assert "(String, Sensitive)" in lines["password"] and "`PGPASSWORD`" in lines["password"]
    assert lines["aws"].startswith("- `aws` (Block")
    aws = attribute_lines(text, ("aws",))
    for secret in ("secret_access_key", "external_id", "session_token"):
        assert "Sensitive" in aws[secret]
    assert 'provider "immuta"' in text
    assert "| `PGUSER` | `username` |" in text


def test_types_render_like_tfplugindocs():
    assert gendocs.type_label(STRING) == "String"
    assert gendocs.type_label(NUMBER) == "Number"
    assert gendocs.type_label(BOOL) == "Bool"
    assert gendocs.type_label(List(STRING)) == "List of String"


class _FakeSource(DataSource):
    type_name = "immuta_example_objects"
    schema = Schema(
        Block(
            description="Lists things.",
            attributes={
                "kind": Attribute(STRING, "Kind.", optional=True, validators=[OneOf(("a", "b"))]),
                "token": Attribute(STRING, "A secret.", optional=True, sensitive=True),
                "names": Attribute(List(STRING), "Names found.", computed=True),
            },
            blocks={
                "filter": NestedBlock(
                    Block({"pattern": Attribute(STRING, "Glob.", required=True)}), "list"
                )
            },
        )
    )


class _FakeFunction(Function):
    name = "example_arn"
    summary = "Builds an ARN."
    description = "Builds an ARN from its parts."
    parameters = (Parameter("region", STRING, "AWS region."), Parameter("n", NUMBER, "Count."))
    returns = STRING


def test_new_data_sources_and_functions_get_pages(monkeypatch):
    """Future-proofing: whatever the provider registers is documented without code changes."""
    real_init = ImmutaProvider.__init__

    def init(self):
        real_init(self)
        self.data_sources = {**self.data_sources, _FakeSource.type_name: _FakeSource()}
        self.functions = {**self.functions, _FakeFunction.name: _FakeFunction()}

    monkeypatch.setattr(gendocs, "ImmutaProvider", type("P", (ImmutaProvider,), {"__init__": init}))
    pages = gendocs.generate()
    source = pages["data-sources/example_objects.md"]
    assert "# immuta_example_objects (Data Source)" in source
    assert "- `token` (String, Sensitive) A secret." in source
    assert "- `names` (List of String) Names found." in source
    assert "Allowed values: `a`, `b`." in source
    assert "- `filter` (Block List, Optional)" in source
    assert "### Nested Schema for `filter`" in source and "## Import" not in source
    function = pages["functions/example_arn.md"]
    assert "# function: example_arn" in function
    assert "example_arn(region string, n number) string" in function
    assert "1. `region` (String) AWS region." in function


NESTED_ATTRIBUTES = Block(
    attributes={
        "mappings": NestedAttribute(
            "Mappings by Immuta user.",
            required=True,
            nesting=MAP,
            attributes={
                "postgres": NestedAttribute(
                    "PostgreSQL side.",
                    optional=True,
                    attributes={
                        "mode": Attribute(
                            STRING,
                            "Mode.",
                            default="unset",
                            validators=[OneOf(("username", "unset"))],
                        ),
                        "username": Attribute(STRING, "Role.", optional=True),
                    },
                ),
                "found": Attribute(BOOL, "Role found.", computed=True),
            },
        ),
        "ports": NestedAttribute(
            "Ports.",
            optional=True,
            nesting=LIST,
            attributes={"number": Attribute(NUMBER, "Port.", required=True)},
        ),
        "tags": NestedAttribute(
            "Tags.",
            optional=True,
            sensitive=True,
            nesting=SET,
            attributes={"name": Attribute(STRING, "Name.", required=True)},
        ),
        "policy": NestedAttribute(
            "Retention.",
            default={"days": 30, "on end": "archive"},
            attributes={
                "days": Attribute(NUMBER, "Days.", optional=True),
                "on end": Attribute(STRING, "Then.", optional=True),
            },
        ),
        "summary": NestedAttribute(
            "Totals.",
            computed=True,
            attributes={"count": Attribute(NUMBER, "Count.", computed=True)},
        ),
    },
    blocks={"filter": NestedBlock(Block({"pattern": Attribute(STRING, "Glob.", required=True)}))},
)


def test_nested_attributes_render_like_tfplugindocs():
    page = "\n".join(["## Schema", ""] + gendocs.render_block(NESTED_ATTRIBUTES)) + "\n"
    top = attribute_lines(page, ())
    assert top["mappings"] == (
        "- `mappings` (Attributes Map) Mappings by Immuta user. "
        "(see [below for nested schema](#nestedatt--mappings))"
    )
    assert top["ports"].startswith("- `ports` (Attributes List) Ports. (see [below")
    assert top["tags"].startswith("- `tags` (Attributes Set, Sensitive) Tags.")
    assert 'Defaults to `{ days = 30, "on end" = "archive" }`.' in top["policy"]
    assert top["summary"].startswith("- `summary` (Attributes) Totals.")
    assert "(see [below for nested schema](#nestedblock--filter))" in top["filter"]
    # Required / Optional / Read-Only sections by where each attribute sits.
    schema = section(page, ())
    assert schema.index("`mappings`") < schema.index("### Optional") < schema.index("`ports`")
    assert schema.index("### Read-Only") < schema.index("`summary`")
    entry = section(page, ("mappings",))
    assert entry.index("Optional:") < entry.index("`postgres` (Attributes)")
    assert entry.index("Read-Only:") < entry.index("`found` (Bool) Role found.")
    assert '<a id="nestedatt--mappings--postgres"></a>' in page
    postgres = attribute_lines(page, ("mappings", "postgres"))
    assert postgres["mode"] == (
        '- `mode` (String) Mode. Allowed values: `username`, `unset`. Defaults to `"unset"`.'
    )
    # One section per nested object, in name order, whether attribute or block.
    headings = [line for line in page.splitlines() if line.startswith("### Nested Schema")]
    assert headings == [
        f"### Nested Schema for `{path}`"
        for path in (
            "filter",
            "mappings",
            "mappings.postgres",
            "policy",
            "ports",
            "summary",
            "tags",
        )
    ]
    for path, _ in walk(NESTED_ATTRIBUTES):
        assert path[-1] in attribute_lines(page, path[:-1]), path
