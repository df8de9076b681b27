"""Results of a Ceph s3-tests run against Anode (used by test_scripts/s3-tests.sh).

As a pytest plugin (`-p s3tests_report`, with this directory on PYTHONPATH): appends one JSON
line per test to $S3TESTS_RESULTS as each test finishes (so a run cut short by the outer time
limit still has every finished test): {"id", "outcome", "markers", "seconds", "message"},
outcome one of passed, failed, error (setup or teardown failed), skipped.
With S3TESTS_PREFIX_PER_TEST=1 it also gives every test its own bucket prefix (the suite picks
one per process, and its setup deletes every bucket with that prefix before each test: one
bucket the server cannot delete would fail the setup of every later test in the process).

As a program: `python3 s3tests_report.py RESULTS.jsonl REPORT.md FAILED.txt TITLE COMMAND` writes
the markdown summary (counts overall, per area, per file) and the failing test ids.
"""

import collections
import json
import os
import sys

import pytest

# Markers that name a feature area, in the order areas are listed. `fails_on_*` and the
# like say where a test fails elsewhere, not what it tests, so they are not areas.
AREA_MARKERS = [
    "versioning",
    "delete_marker",
    "object_lock",
    "lifecycle",
    "lifecycle_expiration",
    "lifecycle_transition",
    "tagging",
    "encryption",
    "sse_s3",
    "bucket_encryption",
    "checksum",
    "bucket_policy",
    "user_policy",
    "group_policy",
    "role_policy",
    "session_policy",
    "object_ownership",
    "copy",
    "conditional_write",
    "list_objects_v2",
    "storage_class",
    "appendobject",
    "auth_common",
    "auth_aws2",
    "auth_aws4",
    "bucket_logging",
    "s3website",
    "s3select",
    "sns",
    "iam_account",
    "iam_user",
    "iam_role",
    "iam_tenant",
    "iam_cross_account",
    "abac_test",
    "test_of_sts",
    "webidentity_test",
    "cloud_transition",
    "cloud_restore",
]

# Areas by test name, for the tests ceph/s3-tests names but does not mark: its `versioning`
# and `object_lock` markers are registered in pytest.ini but no test carries them (8f0ae7b).
NAME_AREAS = [
    ("versioning", ["versioning", "versioned", "delete_marker", "object_version"]),
    ("object_lock", ["object_lock"]),
    ("lifecycle", ["lifecycle"]),
    ("tagging", ["tagging", "_tags"]),
    ("cors", ["cors"]),
    ("acl", ["acl"]),
    ("bucket_policy", ["policy"]),
    ("public_access_block", ["public_block", "block_public"]),
    ("multipart", ["multipart"]),
    ("post_object", ["post_object"]),
    ("sse_c", ["sse_c"]),
    ("checksum", ["checksum"]),
    ("object_attributes", ["object_attributes"]),
]

OUTCOMES = ["passed", "failed", "error", "skipped"]


class _Recorder:
    def __init__(self, path):
        self.path = path
        self.markers = {}
        self.state = {}

    def pytest_collection_modifyitems(self, items):
        for item in items:
            self.markers[item.nodeid] = sorted({m.name for m in item.iter_markers()})

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item):
        if os.environ.get("S3TESTS_PREFIX_PER_TEST") != "1":
            return
        functional = sys.modules.get("s3tests.functional")
        # Before the first test the suite's configure() has not run; it picks the prefix.
        if functional is not None and functional.prefix is not None:
            functional.prefix = functional.choose_bucket_prefix(template="s3t-{random}-")

    def pytest_runtest_logreport(self, report):
        st = self.state.setdefault(
            report.nodeid, {"outcome": "passed", "seconds": 0.0, "message": ""}
        )
        st["seconds"] += getattr(report, "duration", 0.0)
        if report.skipped and st["outcome"] == "passed":
            st["outcome"] = "skipped"
            st["message"] = _short(report)
        elif report.failed:
            if report.when == "call":
                st["outcome"] = "failed"
                st["message"] = _short(report)
            elif st["outcome"] in ("passed", "skipped"):
                st["outcome"] = "error"
                st["message"] = report.when + ": " + _short(report)
        if report.when == "teardown":
            line = {
                "id": report.nodeid,
                "outcome": st["outcome"],
                "markers": self.markers.get(report.nodeid, []),
                "seconds": round(st["seconds"], 3),
                "message": st["message"],
            }
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
            del self.state[report.nodeid]


def _short(report):
    """The last line of the failure (the exception), at most 300 characters."""
    text = ""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        text = crash.message
    elif isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        text = str(report.longrepr[2])
    elif report.longrepr is not None:
        text = str(report.longrepr).strip().splitlines()[-1:]
        text = text[0] if text else ""
    text = " ".join(text.split())
    return text[:300]


def pytest_configure(config):
    path = os.environ.get("S3TESTS_RESULTS")
    if path:
        config.pluginmanager.register(_Recorder(path), "s3tests_recorder")


def _area_of(rec):
    """Every area marker of the test and every area its name matches in NAME_AREAS, else
    `FILE:first word of the function name`."""
    path, _, func = rec["id"].partition("::")
    name = func.split("[")[0]
    areas = [m for m in AREA_MARKERS if m in rec["markers"]]
    for area, parts in NAME_AREAS:
        if area not in areas and any(p in name for p in parts):
            areas.append(area)
    if areas:
        return areas
    word = name[len("test_"):] if name.startswith("test_") else name
    return ["%s:%s" % (os.path.basename(path), word.split("_")[0])]


def _row(name, counts):
    total = sum(counts[o] for o in OUTCOMES)
    return "| %s | %s | %d |" % (name, " | ".join(str(counts[o]) for o in OUTCOMES), total)


def summarize(results_path, report_path, failed_path, title, command):
    recs = []
    if os.path.exists(results_path):
        with open(results_path, encoding="utf-8") as f:
            recs = [json.loads(line) for line in f if line.strip()]
    overall = collections.Counter(r["outcome"] for r in recs)
    by_area = collections.defaultdict(collections.Counter)
    by_file = collections.defaultdict(collections.Counter)
    for r in recs:
        for a in _area_of(r):
            by_area[a][r["outcome"]] += 1
        by_file[r["id"].split("::")[0]][r["outcome"]] += 1
    header = "| | passed | failed | error | skipped | total |\n|---|---|---|---|---|---|"
    named = AREA_MARKERS + [a for a, _ in NAME_AREAS if a not in AREA_MARKERS]
    marker_areas = [a for a in named if a in by_area]
    other_areas = sorted(a for a in by_area if a not in named)
    out = ["# %s" % title, "", "`%s`" % command, ""]
    out += [header, _row("**all**", overall)]
    for mark in ("fails_on_rgw", "fails_on_aws"):
        sub = collections.Counter(r["outcome"] for r in recs if mark not in r["markers"])
        out.append(_row("without `%s`" % mark, sub))
    out += [
        "",
        "`fails_on_rgw` / `fails_on_aws` mark tests that Ceph RGW / AWS S3 itself fails (often a",
        "test the suite cannot make, e.g. an empty Authorization header the signer overwrites).",
        "",
    ]
    out += ["## By file", "", header]
    out += [_row("`%s`" % f, by_file[f]) for f in sorted(by_file)]
    out += ["", "## By area", ""]
    out += [
        "Area = each pytest marker of the test and each area its name matches (`versioning`:",
        "versioning, versioned, delete_marker, object_version; `object_lock`, `lifecycle`,",
        "`tagging`, `cors`, `acl`, `multipart`, ... by substring), so a test can count in",
        "several; tests with neither are listed as `file:first word of the test name`.",
        "",
        header,
    ]
    out += [_row("`%s`" % a, by_area[a]) for a in marker_areas + other_areas]
    bad = [r for r in recs if r["outcome"] in ("failed", "error")]
    slow = sorted(recs, key=lambda r: -r["seconds"])[:10]
    out += ["", "## Slowest tests", "", "| test | outcome | seconds |", "|---|---|---|"]
    out += ["| `%s` | %s | %.1f |" % (r["id"], r["outcome"], r["seconds"]) for r in slow]
    out += ["", "## Failures and errors (first line of each)", ""]
    out += ["- `%s` %s: %s" % (r["id"], r["outcome"], r["message"].replace("|", "\\|")) for r in bad]
    with open(report_path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    with open(failed_path, "w", encoding="utf-8") as f:
        f.writelines(r["id"] + "\n" for r in bad)
    print(
        "s3-tests: %d passed, %d failed, %d error, %d skipped, %d total"
        % (overall["passed"], overall["failed"], overall["error"], overall["skipped"], len(recs))
    )


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit("usage: s3tests_report.py RESULTS.jsonl REPORT.md FAILED.txt TITLE COMMAND")
    summarize(*sys.argv[1:6])
