#!/usr/bin/env python3
"""Writes JSON schemas that kubeconform reads (`-schema-location DIR/{{ .ResourceKind }}{{ .KindSuffix }}.json`)
from sources pinned elsewhere in the repository:

  --swagger FILE  Kubernetes' OpenAPI v2 document (api/openapi-spec/swagger.json of the
                  k8s.io/kubernetes Go module that e2e/k8s-tools/kubernetes pins): one
                  schema per kind, refs into DIR/_definitions.json.
  --crd FILE      CustomResourceDefinition YAML (several allowed): one schema per served
                  version, from its openAPIV3Schema.

The schemas are strict: an object with declared properties rejects unknown keys (a typo
such as `securityContex` fails), unless the API itself preserves unknown fields. Like
Kubernetes, they accept null for any field. CEL rules (x-kubernetes-validations) cannot
be checked here: the server-side dry-run tests in e2e/tests/chart.rs cover them.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import yaml

DEFS = "_definitions.json"
INT_OR_STRING = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
# A Quantity is a string in the OpenAPI document, but `cpu: 1` in YAML is a number.
QUANTITY = {"anyOf": [{"type": "string"}, {"type": "number"}]}
SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": INT_OR_STRING,
    "io.k8s.apimachinery.pkg.api.resource.Quantity": QUANTITY,
}
OBJECT_META = f"{DEFS}#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def file_name(kind: str, api_version: str) -> str:
    """kubeconform's {{ .ResourceKind }}{{ .KindSuffix }}.json (pkg/registry schemaPath)."""
    group, _, version = api_version.rpartition("/")
    if not group:
        return f"{kind.lower()}-{version.lower()}.json"
    return f"{kind.lower()}-{group.split('.')[0].lower()}-{version.lower()}.json"


def allow_null(node: dict) -> None:
    t = node.get("type")
    if isinstance(t, str):
        node["type"] = [t, "null"]
        if "enum" in node:
            node["enum"] = list(node["enum"]) + [None]


def convert(node, in_crd: bool):  # noqa: C901 (one walk over the schema)
    """OpenAPI (v2 definitions or v3 CRD schemas) to JSON Schema 2020-12, strict."""
    if isinstance(node, list):
        return [convert(n, in_crd) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: v for k, v in node.items() if k not in ("description", "example", "externalDocs")}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/definitions/"):
        name = ref[len("#/definitions/") :]
        return copy.deepcopy(SPECIAL[name]) if name in SPECIAL else {"$ref": f"{DEFS}#/definitions/{name}"}
    if node.pop("x-kubernetes-int-or-string", False) or node.get("format") == "int-or-string":
        node.pop("type", None)
        node.pop("format", None)
        return {**{k: convert(v, in_crd) for k, v in node.items() if not k.startswith("x-kubernetes-")}, **INT_OR_STRING}
    preserve = node.pop("x-kubernetes-preserve-unknown-fields", False)
    nullable = node.pop("nullable", False)
    out = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "format":
            continue
        if key == "properties":
            out[key] = {name: convert(schema, in_crd) for name, schema in value.items()}
        elif key == "additionalProperties" and isinstance(value, dict):
            out[key] = convert(value, in_crd)
        elif key in ("items", "not"):
            out[key] = convert(value, in_crd)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [convert(v, in_crd) for v in value]
        else:
            out[key] = copy.deepcopy(value)
    # OpenAPI 3.0's boolean exclusiveMinimum/Maximum are numbers in JSON Schema.
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if out.get(bound) is True and limit in out:
            out[bound] = out.pop(limit)
        elif out.get(bound) is False:
            del out[bound]
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    # Kubernetes treats null as absent (and `nullable` says so explicitly).
    del nullable
    allow_null(out)
    return out


def write(path: Path, schema: dict) -> None:
    path.write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True))


def from_swagger(swagger: dict, out: Path) -> int:
    definitions = {name: convert(d, False) for name, d in swagger["definitions"].items() if name not in SPECIAL}
    write(out / DEFS, {"definitions": definitions})
    count = 0
    for name, definition in swagger["definitions"].items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            schema = copy.deepcopy(definitions[name])
            props = schema.get("properties", {})
            if "kind" in props and "apiVersion" in props:
                # One schema per kind: pin apiVersion and kind so a file serves only its own.
                props["kind"] = {"const": gvk["kind"]}
                props["apiVersion"] = {"const": api_version}
            write(out / file_name(gvk["kind"], api_version), schema)
            count += 1
    return count


def from_crd(crd: dict, out: Path) -> int:
    if crd.get("kind") != "CustomResourceDefinition":
        raise SystemExit(f"openapi2jsonschema: not a CustomResourceDefinition: {crd.get('kind')}")
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    count = 0
    for version in crd["spec"]["versions"]:
        if not version.get("served", True):
            continue
        source = (version.get("schema") or {}).get("openAPIV3Schema")
        if not source:
            raise SystemExit(f"openapi2jsonschema: {kind} {version['name']} has no openAPIV3Schema")
        schema = convert(source, True)
        props = schema.setdefault("properties", {})
        api_version = f"{group}/{version['name']}"
        props["apiVersion"] = {"const": api_version}
        props["kind"] = {"const": kind}
        props["metadata"] = {"$ref": OBJECT_META}
        schema["additionalProperties"] = False
        write(out / file_name(kind, api_version), schema)
        count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--swagger", type=Path, required=True)
    parser.add_argument("--crd", type=Path, action="append", default=[])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    kinds = from_swagger(json.loads(args.swagger.read_text()), args.out)
    for path in args.crd:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                kinds += from_crd(doc, args.out)
    print(f"openapi2jsonschema: {kinds} schemas in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
