#!/usr/bin/env python3
"""Checks the dashboards against Grafana's dashboard model, as grafana-foundation-sdk
(generated from Grafana's own schemas) knows it: each JSON file is decoded into the
SDK's typed Dashboard (panels decoded per panel type with the registered panel
plugins, variables and annotations typed) and encoded again; every key of the file
must survive that round trip with its value (a key the model does not know, or a
value of the wrong shape, does not). Also: uids are stable and unique, and every data
source uid a panel, target, variable or annotation uses is provisioned.

    .deps/grafana-sdk-venv/bin/python integrations/grafana/validate.py
"""
import json
import pathlib
import re
import sys

from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

HERE = pathlib.Path(__file__).resolve().parent
# Keys Grafana's model leaves to the data source plugin (query and variable query
# bodies of data sources the SDK has no types for).
OPAQUE = re.compile(r"^(.*\.targets\.\d+|.*\.target|templating\.list\.\d+\.query)(\.|$)")


def flatten(v, prefix=""):
    if isinstance(v, dict):
        for k, x in v.items():
            yield from flatten(x, f"{prefix}.{k}" if prefix else k)
    elif isinstance(v, list) and v and any(isinstance(x, (dict, list)) for x in v):
        for i, x in enumerate(v):
            yield from flatten(x, f"{prefix}.{i}")
    else:
        yield prefix, v


def provisioned_uids():
    text = (HERE / "provisioning/datasources/edgebench.yaml").read_text()
    return set(re.findall(r"^\s+uid:\s*(\S+)\s*$", text, re.M))


def datasource_refs(d):
    def walk(v, where):
        if isinstance(v, dict):
            ds = v.get("datasource")
            if isinstance(ds, dict) and "uid" in ds:
                yield where, ds["uid"], ds.get("type")
            for k, x in v.items():
                yield from walk(x, f"{where}.{k}")
        elif isinstance(v, list):
            for i, x in enumerate(v):
                yield from walk(x, f"{where}.{i}")
    yield from walk(d, d.get("uid", "?"))


def main():
    plugins.register_default_plugins()
    files = sorted((HERE / "dashboards").rglob("*.json"))
    if not files:
        sys.exit("no dashboards found")
    problems, uids = [], {}
    known = provisioned_uids() | {"-- Grafana --"}
    for f in files:
        rel = f.relative_to(HERE)
        d = json.loads(f.read_text())
        model = Dashboard.from_json(d)
        back = json.loads(json.dumps(model, cls=JSONEncoder))
        got = dict(flatten(back))
        for path, value in flatten(d):
            if OPAQUE.match(path):
                continue
            if path not in got:
                problems.append(f"{rel}: `{path}` is not in Grafana's dashboard model")
            elif got[path] != value:
                problems.append(f"{rel}: `{path}` = {value!r} comes back as {got[path]!r}")
        uid = d.get("uid", "")
        if not re.fullmatch(r"[a-zA-Z0-9_-]{8,40}", uid):
            problems.append(f"{rel}: uid {uid!r} must be 8-40 of [a-zA-Z0-9_-]")
        if uid in uids:
            problems.append(f"{rel}: uid {uid} also in {uids[uid]}")
        uids[uid] = rel
        for where, ds_uid, _ in datasource_refs(d):
            if ds_uid not in known:
                problems.append(f"{rel}: {where} uses data source uid {ds_uid}, not provisioned")
        names = {v["name"] for v in d["templating"]["list"]}
        for need in ("device", "model", "precision"):
            if need not in names:
                problems.append(f"{rel}: no template variable `{need}`")
        print(f"{rel}: {len(d['panels'])} panels, uid {uid}")
    for p in problems:
        print(p, file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
