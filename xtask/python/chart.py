"""Helm chart rendering, linting and Kubernetes schema validation for `cargo xtask`.

Runs in the Python venv `cargo xtask setup` makes (target/xtask-venv), which holds a library
wrapping Helm's own Go engine and the Kubernetes JSON schemas. Every command prints one JSON
document on stdout for xtask to read; a problem of the chart is data in that document, a problem
of this script's input is a non-zero exit with the reason on stderr.

  chart.py render CHART VALUES NAME NAMESPACE   templates as rendered and their objects, or the
                                                chart's error
  chart.py lint CHART VALUES                    helm lint --strict findings
  chart.py validate OBJECTS_JSON MIN_VERSION    every object against every schema version >= MIN
  chart.py yaml FILE                            the documents of a YAML file
"""

import json
import sys

import yaml


def load_values(path):
    with open(path, encoding="utf-8") as f:
        values = yaml.safe_load(f)
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise SystemExit(f"{path}: values must be a mapping")
    return values


def render(chart_dir, values_path, name, namespace):
    import helm_python as helm

    with helm.Chart.load(chart_dir) as chart:
        try:
            rendered = chart.render(
                load_values(values_path), name=name, namespace=namespace, is_install=True
            )
        except (helm.HelmRenderError, helm.HelmValuesError) as e:
            # The chart refused these values: data for the caller, not a failure of ours.
            return {"error": str(e)}
    templates = {}
    objects = []
    for template in sorted(rendered):
        text = rendered[template]
        templates[template] = text
        if template.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document is not None:
                objects.append({"template": template, "object": document})
    return {"templates": templates, "objects": objects}


def lint(chart_dir, values_path):
    import helm_python as helm

    return helm.lint(chart_dir, load_values(values_path), strict=True)


def version_key(version):
    return tuple(int(part) for part in version.split("."))


def validate(objects_path, min_version):
    import kubernetes_validate.utils as kv

    with open(objects_path, encoding="utf-8") as f:
        objects = json.load(f)
    # One schema set per minor version (the newest patch of each), from MIN on.
    newest = {}
    for version in kv.all_versions():
        minor = kv.major_minor(version)
        if version_key(minor) >= version_key(min_version):
            newest[minor] = max(newest.get(minor, version), version, key=version_key)
    versions = sorted(newest.values(), key=version_key)
    results = []
    for index, obj in enumerate(objects):
        for version in versions:
            result = {"index": index, "version": version}
            try:
                kv.validate(obj, version, strict=True)
                result["status"] = "valid"
            except kv.SchemaNotFoundError:
                result["status"] = "no_schema"
            except kv.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                result["status"] = "invalid"
                result["message"] = f"{path}: {e.message}"
            results.append(result)
    return {"versions": versions, "results": results}


def documents(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def main(argv):
    commands = {
        "render": (render, 4),
        "lint": (lint, 2),
        "validate": (validate, 2),
        "yaml": (documents, 1),
    }
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        raise SystemExit(__doc__)
    command, _ = commands[argv[1]]
    json.dump(command(*argv[2:]), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
