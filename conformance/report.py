"""Conformance output: the per-family table, failure details, JUnit XML and JSON."""
import dataclasses
import json
import xml.etree.ElementTree as ElementTree

STATUSES = ("passed", "failed", "xfailed", "xpassed", "unsupported")


def table(results):
    """A plain-text table with one row per property family and a total row."""
    families = {}
    for result in results:
        row = families.setdefault(result.family, dict.fromkeys(STATUSES, 0) | {"examples": 0, "seconds": 0.0})
        row[result.status] += 1
        row["examples"] += result.examples
        row["seconds"] += result.seconds
    header = f"{'family':12s} " + " ".join(f"{s:>11s}" for s in STATUSES) + f" {'examples':>9s} {'seconds':>8s}"
    lines = [header, "-" * len(header)]
    total = dict.fromkeys(STATUSES, 0) | {"examples": 0, "seconds": 0.0}
    for family, row in families.items():
        lines.append(f"{family:12s} " + " ".join(f"{row[s]:11d}" for s in STATUSES)
                     + f" {row['examples']:9d} {row['seconds']:8.1f}")
        for key in total:
            total[key] += row[key]
    lines.append("-" * len(header))
    lines.append(f"{'total':12s} " + " ".join(f"{total[s]:11d}" for s in STATUSES)
                 + f" {total['examples']:9d} {total['seconds']:8.1f}")
    return "\n".join(lines)


def failures(results):
    """Each failed property with its message and a runnable reproduction."""
    blocks = []
    for result in results:
        if result.status == "failed":
            blocks.append(f"FAILED {result.name}\n  {result.message.splitlines()[0] if result.message else ''}\n"
                          + "\n".join("    " + line for line in result.message.splitlines()[1:12])
                          + "\n  reproduce with:\n"
                          + "\n".join("    " + line for line in result.snippet.splitlines()))
    return "\n\n".join(blocks)


def write_json(path, backend, tier, seed, results):
    """All results as JSON."""
    with open(path, "w") as handle:
        json.dump({"backend": backend, "tier": tier, "seed": seed,
                   "results": [dataclasses.asdict(r) for r in results]}, handle, indent=1)


def write_junit(path, backend, results):
    """JUnit XML: one testsuite per family, unsupported properties as skipped."""
    root = ElementTree.Element("testsuites", name=f"metajit conformance ({backend})")
    suites = {}
    for result in results:
        suite = suites.get(result.family)
        if suite is None:
            suite = suites[result.family] = ElementTree.SubElement(
                root, "testsuite", name=f"conformance.{backend}.{result.family}")
        case = ElementTree.SubElement(suite, "testcase", classname=f"conformance.{result.family}",
                                      name=result.name, time=f"{result.seconds:.3f}")
        if result.status == "failed":
            failure = ElementTree.SubElement(case, "failure", message=result.message[:200])
            failure.text = result.message + "\n\n" + result.snippet
        elif result.status in ("unsupported", "xfailed"):
            ElementTree.SubElement(case, "skipped", message=f"{result.status}: {result.message[:200]}")
    for suite in suites.values():
        cases = list(suite)
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
        suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
    ElementTree.ElementTree(root).write(path, encoding="unicode", xml_declaration=True)
