"""Bad-input corpus for ``merlin targetgen validate``.

Every case is a small valid spec (``tests/bad_inputs/base_*.yaml``) with a
textual edit, or one of the tiny broken files stored beside them. Each case
names the exact ``FILE:LINE: field.path:`` prefix of every error it must
produce, in the order they must be printed (sorted by line), plus a key part
of the message. Cases run through the real CLI in a subprocess (exit code 2,
one line per error, no traceback) and through the in-process loader.

Line numbers refer to the base files; ``cat -n tests/bad_inputs/base_capability.yaml``
shows them. Edits replace a line by a line (or comment a line out) so the
numbers stay put.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli_runner import run_cli
from conftest import REPO
from merlin.errors import SpecError
from merlin.spec.loader import load_capability, load_overlay, load_pair

DATA = REPO / "tests" / "bad_inputs"
BASE_CAPABILITY = DATA / "base_capability.yaml"
BASE_OVERLAY = DATA / "base_overlay.yaml"

# What each error line may look like: FILE: ..., FILE:LINE: ..., FILE:LINE:COL: ...
LINE_SHAPE = re.compile(r"^(?P<file>.+?\.yaml)(?::(?P<line>\d+))?(?::\d+)?: \S")


@dataclass(frozen=True)
class Case:
    id: str
    #: (text after the file name up to and including the field path, key part of the message)
    expected: tuple[tuple[str, str], ...]
    kind: str = "capability"  # or "overlay"
    edits: tuple[tuple[str, str], ...] = ()  # (old, new): old must occur exactly once in the base
    append: str = ""  # text added at the end of the base
    data: str | None = None  # a stored broken file instead of the base
    text: str | None = None  # the whole file instead of the base
    raw: bytes | None = None  # the whole file, as bytes

    def write(self, directory: Path) -> Path:
        path = directory / f"{self.kind}.yaml"
        if self.raw is not None:
            path.write_bytes(self.raw)
            return path
        if self.data is not None:
            path.write_bytes((DATA / self.data).read_bytes())
            return path
        if self.text is not None:
            path.write_text(self.text)
            return path
        base = (BASE_CAPABILITY if self.kind == "capability" else BASE_OVERLAY).read_text()
        for old, new in self.edits:
            assert base.count(old) == 1, f"{self.id}: {old!r} must occur exactly once in the base file"
            assert old.count("\n") == new.count("\n"), f"{self.id}: an edit must keep the line numbers"
            base = base.replace(old, new)
        path.write_text(base + self.append)
        return path


def cap(id: str, *expected: tuple[str, str], **kw: object) -> Case:
    return Case(id=id, expected=expected, kind="capability", **kw)  # type: ignore[arg-type]


def ovl(id: str, *expected: tuple[str, str], **kw: object) -> Case:
    return Case(id=id, expected=expected, kind="overlay", **kw)  # type: ignore[arg-type]


ENUM_KINDS = "cpu_only, vector_cpu_extension, matrix_coprocessor, rocc_accelerator, structured_npu, simt_gpu, mixed"

CASES: list[Case] = [
    # --- YAML syntax: line and column -------------------------------------
    cap("yaml-tab-indent", (":4:1: YAML syntax error:", "found character '\\t' that cannot start any token"), data="tab_indent.yaml"),
    cap(
        "yaml-tab-in-nested-mapping",
        (":18:1: YAML syntax error:", "found character '\\t'"),
        edits=[("    kind: llvm_backend_features", "\tkind: llvm_backend_features")],
    ),
    cap(
        "yaml-unclosed-flow-list",
        (":17:11: YAML syntax error:", "expected ',' or ']', but got ':' (while parsing a flow sequence; it starts at line 16"),
        edits=[("  features: [+v, +zvl256b]", "  features: [+v, +zvl256b")],
    ),
    cap(
        "yaml-unclosed-quote",
        (":41:1: YAML syntax error:", "found unexpected end of stream (while scanning a quoted scalar; it starts at line 7"),
        edits=[("  display_name: Base Target", '  display_name: "Base Target')],
    ),
    cap(
        "yaml-colon-in-plain-value",
        (":12:19: YAML syntax error:", "mapping values are not allowed here"),
        edits=[("  kind: vector_cpu_extension", "  kind: vector_cpu: extension")],
    ),
    cap(
        "yaml-bad-dedent",
        (":7:2: YAML syntax error:", "expected <block end>, but found '<block mapping start>'"),
        edits=[("  display_name: Base Target", " display_name: Base Target")],
    ),
    cap(
        "yaml-two-documents",
        (":41:1: YAML syntax error:", "expected a single document in the stream"),
        append="---\nschema_version: 1\n",
    ),
    cap(
        "yaml-control-character",
        (":7: YAML syntax error:", "control character #x0007 is not allowed"),
        edits=[("  display_name: Base Target", "  display_name: Base\x07Target")],
    ),
    cap(
        "yaml-recursive-alias",
        (":41: references[0]:", "recursive alias"),
        append="references: &loop [*loop]\n",
    ),
    cap(
        "yaml-bad-explicit-int-tag",
        (":27:16: YAML syntax error:", "'wide' is not a valid int (check the explicit !!int tag)"),
        edits=[("    vlen_bits: 256", "    vlen_bits: !!int wide")],
    ),
    cap(
        "yaml-python-tag-refused",
        (":7:17: YAML syntax error:", "could not determine a constructor for the tag 'tag:yaml.org,2002:python/name:os.system'"),
        edits=[("  display_name: Base Target", "  display_name: !!python/name:os.system")],
    ),
    cap(
        "yaml-unhashable-key",
        (":41:3: YAML syntax error:", "found unhashable key"),
        append="? [a, b]\n: 1\n",
    ),
    cap(
        "yaml-nested-too-deeply",
        (": YAML is nested too deeply", "expected a spec a few levels deep"),
        append="references: " + "[" * 3000 + "]" * 3000 + "\n",
    ),
    # --- whole-file problems -------------------------------------------------
    cap("empty-file", (": file is empty", "expected a capability spec mapping"), data="empty.yaml"),
    cap("whitespace-only-file", (": file is empty", "schema_version: 1"), data="whitespace_only.yaml"),
    cap("comment-only-file", (": file is empty", "schema_version: 1"), data="comment_only.yaml"),
    cap("document-marker-only", (": file is empty", "schema_version: 1"), text="---\n"),
    cap("root-is-list", (":2: top level is a list", "expected a capability spec mapping"), data="root_list.yaml"),
    cap("root-is-scalar", (":2: top level is a string", "expected a capability spec mapping"), data="root_scalar.yaml"),
    cap("not-utf8", (": not UTF-8 text", "byte 1"), raw=b"#\xff\xfe not text\n"),
    ovl("overlay-empty-file", (": file is empty", "expected a deployment overlay mapping"), data="empty.yaml"),
    ovl("overlay-root-is-list", (":2: top level is a list", "expected a deployment overlay mapping"), data="root_list.yaml"),
    # --- schema_version ------------------------------------------------------
    cap("schema-version-2", (":4: schema_version:", "2 is not supported (expected 1)"), edits=[("schema_version: 1", "schema_version: 2")]),
    cap(
        "schema-version-string",
        (":4: schema_version:", "'1' is not supported (expected 1)"),
        edits=[("schema_version: 1", 'schema_version: "1"')],
    ),
    cap("schema-version-true", (":4: schema_version:", "true is not supported (expected 1)"), edits=[("schema_version: 1", "schema_version: true")]),
    cap("schema-version-float", (":4: schema_version:", "1.0 is not supported (expected 1)"), edits=[("schema_version: 1", "schema_version: 1.0")]),
    cap("schema-version-missing", (":5: schema_version:", "required field is missing"), edits=[("schema_version: 1", "# no version")]),
    # --- unknown keys, at every depth, with did-you-mean -----------------------
    cap(
        "unknown-top-level-key",
        (":41: extra_section:", "unknown field (expected one of: access, execution_model, geometry"),
        append="extra_section: 1\n",
    ),
    cap(
        "misspelt-top-level-section",
        (":4: platform:", "required field is missing"),
        (":8: platfrom:", "unknown field (did you mean 'platform'?)"),
        edits=[("platform:", "platfrom:")],
    ),
    cap(
        "unknown-section-key",
        (":7: target.display_nam:", "unknown field (did you mean 'display_name'?)"),
        edits=[("  display_name: Base Target", "  display_nam: Base Target")],
    ),
    cap(
        "unknown-nested-key-isa-exposure",
        (":19: isa.exposure.needs_new_featurebits:", "unknown field (did you mean 'needs_new_feature_bits'?)"),
        edits=[("    needs_new_feature_bits: true", "    needs_new_featurebits: true")],
    ),
    cap(
        "unknown-key-in-list-item",
        (":23: operations.compute[0].natve:", "unknown field (did you mean 'native'?)"),
        edits=[("      native: true", "      natve: true")],
    ),
    cap(
        "unknown-key-beside-an-open-mapping",
        (":35: verification.tolerance:", "unknown field (did you mean 'tolerances'?)"),
        edits=[("  tolerances:", "  tolerance:")],
    ),
    cap(
        "boolean-key",
        (":41: true:", "key is a boolean (expected a string: quote the key; YAML reads bare yes/no/on/off as booleans)"),
        append="yes: 1\n",
    ),
    # --- closed enumerations: every enumerated field ---------------------------
    cap(
        "bad-execution-model-kind",
        (":12: execution_model.kind:", f"'vector_cpu' is not allowed (expected one of: {ENUM_KINDS}; did you mean 'vector_cpu_extension'?)"),
        edits=[("  kind: vector_cpu_extension", "  kind: vector_cpu")],
    ),
    cap(
        "execution-model-kind-not-a-string",
        (":12: execution_model.kind:", f"3 is an integer (expected one of: {ENUM_KINDS})"),
        edits=[("  kind: vector_cpu_extension", "  kind: 3")],
    ),
    cap(
        "bad-compiler-recovery-stage",
        (
            ":13: execution_model.compiler_recovery_stage:",
            "'llvm_codegen' is not allowed (expected one of: post_global_optimization, llvmcpu_codegen, text_isa_export, runtime_only",
        ),
        edits=[("  compiler_recovery_stage: llvmcpu_codegen", "  compiler_recovery_stage: llvm_codegen")],
    ),
    cap(
        "bad-exposure-kind",
        (
            ":18: isa.exposure.kind:",
            "'llvm_features' is not allowed (expected one of: llvm_intrinsics, llvm_backend_features, custom_exporter, text_isa, hal_runtime, none",
        ),
        edits=[("    kind: llvm_backend_features", "    kind: llvm_features")],
    ),
    cap(
        "bad-access-model",
        (
            ":38: access.model:",
            "'emulator' is not allowed (expected one of: local_device, remote_device, cloud_service, simulator, board, lab_hardware",
        ),
        edits=[("  model: simulator", "  model: emulator")],
    ),
    cap(
        "bad-availability-class",
        (
            ":39: access.availability_class:",
            "'local' is not allowed (expected one of: always_local, lab_hardware, cloud_token_required, sdk_install_required",
        ),
        edits=[("  availability_class: always_local", "  availability_class: local")],
    ),
    cap(
        "bad-verification-gate",
        (
            ":40: access.verification_gates[1]:",
            "'smoke_test' is not allowed (expected one of: compile_only, device_query, smoke_run, profile_run; did you mean 'smoke_run'?)",
        ),
        edits=[("[compile_only, smoke_run]", "[compile_only, smoke_test]")],
    ),
    cap(
        "duplicate-verification-gate",
        (":40: access.verification_gates:", "duplicate gate compile_only (expected each gate at most once)"),
        edits=[("[compile_only, smoke_run]", "[compile_only, smoke_run, compile_only]")],
    ),
    ovl(
        "overlay-bad-deployment-mode",
        (
            ":5: deployment.mode:",
            "'baremetal' is not allowed (expected one of: board, firesim, bare-metal, simulator, runtime-driver, host-emulation; "
            "did you mean 'bare-metal'?)",
        ),
        edits=[("  mode: simulator", "  mode: baremetal")],
    ),
    # --- wrong types: booleans are not numbers, numbers are not booleans -------
    cap(
        "vlen-bits-boolean",
        (":27: geometry.vector.vlen_bits:", "true is a boolean (expected an integer)"),
        edits=[("    vlen_bits: 256", "    vlen_bits: true")],
    ),
    cap(
        "tile-entry-boolean",
        (":29: geometry.native_tile_options[0][1]:", "true is a boolean (expected an integer)"),
        edits=[("    - [8, 8, 4]", "    - [8, true, 4]")],
    ),
    cap(
        "vlen-bits-float",
        (":27: geometry.vector.vlen_bits:", "256.5 is a number (expected an integer)"),
        edits=[("    vlen_bits: 256", "    vlen_bits: 256.5")],
    ),
    cap(
        "vlen-bits-zero",
        (":27: geometry.vector.vlen_bits:", "0 is out of range (expected a number greater than 0)"),
        edits=[("    vlen_bits: 256", "    vlen_bits: 0")],
    ),
    cap(
        "tile-too-long",
        (":29: geometry.native_tile_options[0]:", "has 5 items (expected 1 to 4)"),
        edits=[("    - [8, 8, 4]", "    - [8, 8, 4, 2, 1]")],
    ),
    cap(
        "number-as-boolean",
        (":31: numeric.saturation:", "1 is an integer (expected true or false)"),
        edits=[("  saturation: true", "  saturation: 1")],
    ),
    cap(
        "string-as-boolean",
        (":33: runtime.required:", "'no' is a string (expected true or false)"),
        edits=[("  required: false", '  required: "no"')],
    ),
    cap(
        "string-instead-of-list",
        (":16: isa.features:", "'+v' is a string (expected a list)"),
        edits=[("  features: [+v, +zvl256b]", "  features: +v")],
    ),
    cap(
        "list-instead-of-section",
        (":36: verification.tolerances.int8:", "a list is a list (expected a mapping)"),
        edits=[("    int8: {atol: 0, rtol: 0}", "    int8: [0, 0]")],
    ),
    cap(
        "number-instead-of-string",
        (":9: platform.host_isa:", "64 is an integer (expected a string)"),
        edits=[("  host_isa: riscv64", "  host_isa: 64")],
    ),
    cap(
        "negative-tolerance",
        (":36: verification.tolerances.int8.atol:", "-1 is out of range (expected a number at least 0"),
        edits=[("    int8: {atol: 0, rtol: 0}", "    int8: {atol: -1, rtol: 0}")],
    ),
    cap(
        "infinite-tolerance",  # NaN and negatives were refused; .inf was accepted
        (":36: verification.tolerances.int8.rtol:", "finite number"),
        edits=[("    int8: {atol: 0, rtol: 0}", "    int8: {atol: 0, rtol: .inf}")],
    ),
    # --- nulls and missing: required vs optional -------------------------------
    cap(
        "null-required-section",
        (":32: runtime:", "is null (expected a mapping)"),
        edits=[("  required: false", "  # required: false")],
    ),
    cap(
        "null-optional-section",
        (":30: numeric:", "is null (expected a mapping; remove the key to use the default)"),
        edits=[("  saturation: true", "  # saturation: true")],
    ),
    cap("null-required-field", (":9: platform.host_isa:", "is null (expected a string)"), edits=[("  host_isa: riscv64", "  host_isa:")]),
    cap(
        "null-list-item",
        (":29: geometry.native_tile_options[0]:", "is null (expected a list)"),
        edits=[("    - [8, 8, 4]", "    -")],
    ),
    cap(
        "missing-required-section",
        (":4: execution_model:", "required field is missing"),
        edits=[
            (
                "execution_model:\n  kind: vector_cpu_extension\n  compiler_recovery_stage: llvmcpu_codegen",
                "# execution_model:\n#   kind: vector_cpu_extension\n#   compiler_recovery_stage: llvmcpu_codegen",
            )
        ],
    ),
    cap(
        "missing-required-field",
        (":11: execution_model.compiler_recovery_stage:", "required field is missing"),
        edits=[("  compiler_recovery_stage: llvmcpu_codegen", "  # compiler_recovery_stage: llvmcpu_codegen")],
    ),
    cap(
        "missing-required-field-in-list-item",
        (":22: operations.compute[0].name:", "required field is missing"),
        edits=[("    - name: matmul\n      native: true", "    - native: true\n      # no name")],
    ),
    # --- names used as directory names, credentials ----------------------------
    cap(
        "unsafe-target-name",
        (":6: target.name:", "'../evil' is not a safe name"),
        edits=[("  name: base_target", "  name: ../evil")],
    ),
    cap(
        "target-name-with-slash",
        (":6: target.name:", "'a/b' is not a safe name"),
        edits=[("  name: base_target", "  name: a/b")],
    ),
    cap(
        "bad-credential-entry",
        (":40: access.credential_requirements[0].env:", "'1BAD' is not a valid identifier"),
        (":40: access.credential_requirements[0].name:", "'../token' is not a safe name"),
        edits=[("  verification_gates: [compile_only, smoke_run]", "  credential_requirements: [{name: ../token, env: 1BAD}]")],
    ),
    cap(
        "credential-requirements-unsafe-name",
        (":40: access.credential_requirements:", "'../nope' is a string (expected 'none' or a name (letters, digits"),
        edits=[("  verification_gates: [compile_only, smoke_run]", "  credential_requirements: ../nope")],
    ),
    cap(
        "target-name-with-dot-dot",
        (":6: target.name:", "'ok..name' is not a safe name (expected letters, digits, '_', '.', '-', starting with a letter or digit, at most 128, no '..')"),
        edits=[("  name: base_target", "  name: ok..name")],
    ),
    cap(
        "empty-compute-list",
        (":21: operations.compute:", "is empty (expected a non-empty list)"),
        edits=[
            (
                "  compute:\n    - name: matmul\n      native: true\n      type_triples: [i8*i8->i32]",
                "  compute: []\n  # no\n  # operations\n  # at all",
            )
        ],
    ),
    cap(
        "empty-memory-spaces",
        (":41: memory.spaces:", "is empty (expected a non-empty list)"),
        append="memory: {spaces: []}\n",
    ),
    # --- duplicate keys (reported with the other errors) -----------------------
    cap(
        "duplicate-top-level-key",
        (":41: target:", "duplicate key (first defined on line 5)"),
        append="target: {name: other}\n",
    ),
    cap(
        "duplicate-nested-key",
        (":19: isa.exposure.kind:", "duplicate key (first defined on line 18)"),
        edits=[("    needs_new_feature_bits: true", "    kind: text_isa")],
    ),
    # --- several errors in one file: all of them, sorted by line ----------------
    cap(
        "many-errors-sorted-by-line",
        (":7: target.display_nam:", "did you mean 'display_name'"),
        (":12: execution_model.kind:", "'gpu' is not allowed"),
        (":27: geometry.vector.vlen_bits:", "true is a boolean"),
        (":33: runtime.required:", "1 is an integer (expected true or false)"),
        (":41: isa:", "duplicate key (first defined on line 14)"),
        edits=[
            ("  display_name: Base Target", "  display_nam: Base Target"),
            ("  kind: vector_cpu_extension", "  kind: gpu"),
            ("    vlen_bits: 256", "    vlen_bits: true"),
            ("  required: false", "  required: 1"),
        ],
        append="isa: {base: riscv64, exposure: {kind: none}}\n",
    ),
    # --- overlays ----------------------------------------------------------------
    ovl(
        "overlay-unknown-deployment-key",
        (":9: deployment.runtim:", "unknown field (did you mean 'runtime'?)"),
        edits=[("  runtime:", "  runtim:")],
    ),
    ovl(
        "overlay-unknown-preflight-key",
        (":14: deployment.preflight.timeout:", "unknown field (did you mean 'timeout_s'?)"),
        edits=[("    timeout_s: 30", "    timeout: 30")],
    ),
    ovl(
        "overlay-chipyard-sha-not-hex",
        (":8: deployment.chipyard.sha:", "'main-branch' is not a git sha (expected 7 to 40 lowercase hex digits)"),
        edits=[("    sha: 6a9b4cd", "    sha: main-branch")],
    ),
    ovl(
        "overlay-chipyard-sha-uppercase",
        (":8: deployment.chipyard.sha:", "'6A9B4CD' is not a git sha"),
        edits=[("    sha: 6a9b4cd", "    sha: 6A9B4CD")],
    ),
    ovl(
        "overlay-chipyard-sha-number",
        (":8: deployment.chipyard.sha:", "1234567 is an integer (expected a string)"),
        edits=[("    sha: 6a9b4cd", "    sha: 1234567")],
    ),
    ovl("overlay-deployment-missing", (":2: deployment:", "required field is missing"), text="# no deployment\nschema_version: 1\n"),
    ovl("overlay-deployment-null", (":3: deployment:", "is null (expected a mapping)"), text="schema_version: 1\n\ndeployment:\n"),
    ovl(
        "overlay-unsafe-deployment-name",
        (":4: deployment.name:", "'../evil' is not a safe name"),
        edits=[("  name: sim_local", "  name: ../evil")],
    ),
    ovl(
        "overlay-timeout-zero",
        (":14: deployment.preflight.timeout_s:", "0 is out of range (expected a number greater than 0"),
        edits=[("    timeout_s: 30", "    timeout_s: 0")],
    ),
    ovl(
        "overlay-timeout-boolean",
        (":14: deployment.preflight.timeout_s:", "true is a boolean (expected a number)"),
        edits=[("    timeout_s: 30", "    timeout_s: true")],
    ),
    ovl(
        "overlay-null-probe-command",
        (":13: deployment.preflight.probes.python:", "is null (expected a string)"),
        edits=[("      python: python3 --version", "      python:")],
    ),
    ovl(
        "overlay-schema-version-2",
        (":2: schema_version:", "2 is not supported (expected 1)"),
        edits=[("schema_version: 1", "schema_version: 2")],
    ),
    ovl(
        "overlay-duplicate-key",
        (":15: deployment:", "duplicate key (first defined on line 3)"),
        append="deployment: {name: again, mode: board}\n",
    ),
]

IDS = [case.id for case in CASES]
assert len(IDS) == len(set(IDS)), "case ids must be unique"

# Each CLI call starts Python (~0.3 s), so these cases, which take the same path
# as a CLI case of the same kind, run only in-process. Every case runs in-process.
API_ONLY = {
    "yaml-unhashable-key",
    "yaml-colon-in-plain-value",
    "yaml-two-documents",
    "document-marker-only",
    "overlay-empty-file",
    "overlay-root-is-list",
    "schema-version-float",
    "schema-version-missing",
    "misspelt-top-level-section",
    "unknown-key-beside-an-open-mapping",
    "boolean-key",
    "execution-model-kind-not-a-string",
    "tile-entry-boolean",
    "vlen-bits-float",
    "vlen-bits-zero",
    "tile-too-long",
    "string-as-boolean",
    "string-instead-of-list",
    "list-instead-of-section",
    "number-instead-of-string",
    "negative-tolerance",
    "null-required-field",
    "null-list-item",
    "missing-required-field",
    "missing-required-field-in-list-item",
    "target-name-with-slash",
    "bad-credential-entry",
    "credential-requirements-unsafe-name",
    "duplicate-nested-key",
    "overlay-unknown-preflight-key",
    "overlay-chipyard-sha-uppercase",
    "overlay-chipyard-sha-number",
    "overlay-deployment-missing",
    "overlay-deployment-null",
    "overlay-unsafe-deployment-name",
    "overlay-timeout-zero",
    "overlay-timeout-boolean",
    "overlay-null-probe-command",
    "overlay-schema-version-2",
    "overlay-duplicate-key",
}
assert API_ONLY <= set(IDS), API_ONLY - set(IDS)
CLI_CASES = [case for case in CASES if case.id not in API_ONLY]


def _check_lines(lines: list[str], shown: str, expected: tuple[tuple[str, str], ...]) -> None:
    assert len(lines) == len(expected), "\n".join(["got:", *lines, "expected:", *(shown + p + " ... " + m for p, m in expected)])
    for line, (prefix, fragment) in zip(lines, expected, strict=True):
        assert line.startswith(shown + prefix), f"{line!r} does not start with {shown + prefix!r}"
        assert fragment in line[len(shown + prefix) :], f"{line!r} does not contain {fragment!r}"
        assert "\n" not in line
    numbers = [int(m.group("line") or 0) for m in map(LINE_SHAPE.match, lines) if m]
    assert len(numbers) == len(lines), f"a line is not FILE[:LINE[:COL]]: ...: {lines}"
    assert numbers == sorted(numbers), f"errors are not sorted by line: {lines}"


def _cli_args(case: Case, path: Path) -> list[str]:
    if case.kind == "capability":
        return ["targetgen", "validate", str(path)]
    return ["targetgen", "validate", str(BASE_CAPABILITY), "--overlay", str(path)]


def _assert_cli_fails(result: object, lines_expected: int | None = None) -> list[str]:
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.returncode == 2, f"exit {result.returncode}; stderr:\n{stderr}"  # type: ignore[attr-defined]
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert result.stdout == "", result.stdout  # type: ignore[attr-defined]
    lines = stderr.splitlines()
    if lines_expected is not None:
        assert len(lines) == lines_expected, stderr
    return lines


def test_base_files_are_valid() -> None:
    """The corpus only means something if the unedited base files validate."""
    result = run_cli("targetgen", "validate", str(BASE_CAPABILITY), "--overlay", str(BASE_OVERLAY))
    assert result.returncode == 0, result.stderr
    assert load_capability(BASE_CAPABILITY).model.target.name == "base_target"
    assert load_overlay(BASE_OVERLAY).model.deployment.name == "sim_local"


def test_corpus_size() -> None:
    assert len(CASES) >= 35 and len(CLI_CASES) >= 30


@pytest.mark.parametrize("case", CLI_CASES, ids=[case.id for case in CLI_CASES])
def test_bad_input_cli(case: Case, tmp_path: Path) -> None:
    path = case.write(tmp_path)
    lines = _assert_cli_fails(run_cli(*_cli_args(case, path)))
    _check_lines(lines, str(path), case.expected)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bad_input_api(case: Case, tmp_path: Path) -> None:
    """The same corpus through merlin.spec.loader: a SpecError with the same lines, never another exception."""
    path = case.write(tmp_path)
    load = load_capability if case.kind == "capability" else load_overlay
    with pytest.raises(SpecError) as info:
        load(path)
    _check_lines(info.value.lines, str(path), case.expected)
    assert info.value.exit_code == 2


# --- cases that need more than one file ---------------------------------------


def test_missing_capability_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "capability.yaml"
    lines = _assert_cli_fails(run_cli("targetgen", "validate", str(missing)), 1)
    assert lines[0] == f"{missing}: no such file (expected a capability spec YAML file)"


def test_missing_overlay_file(tmp_path: Path) -> None:
    missing = tmp_path / "overlays" / "nope.yaml"
    lines = _assert_cli_fails(run_cli("targetgen", "validate", str(BASE_CAPABILITY), "--overlay", str(missing)), 1)
    assert lines[0] == f"{missing}: no such file (expected a deployment overlay YAML file)"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    lines = _assert_cli_fails(run_cli("targetgen", "validate", str(tmp_path)), 1)
    assert lines[0] == f"{tmp_path}: is a directory (expected a capability spec YAML file)"


def test_both_files_wrong_are_reported_together(tmp_path: Path) -> None:
    """Capability errors first, then overlay errors; each file's sorted by line."""
    capability = cap(
        "c",
        (":12: execution_model.kind:", "'gpu' is not allowed"),
        (":27: geometry.vector.vlen_bits:", "true is a boolean"),
        edits=[("  kind: vector_cpu_extension", "  kind: gpu"), ("    vlen_bits: 256", "    vlen_bits: true")],
    )
    overlay = ovl(
        "o",
        (":5: deployment.mode:", "'fpga' is not allowed"),
        (":8: deployment.chipyard.sha:", "'HEAD' is not a git sha"),
        edits=[("  mode: simulator", "  mode: fpga"), ("    sha: 6a9b4cd", "    sha: HEAD")],
    )
    cap_path = capability.write(tmp_path)
    ovl_path = overlay.write(tmp_path)
    lines = _assert_cli_fails(run_cli("targetgen", "validate", str(cap_path), "--overlay", str(ovl_path)), 4)
    _check_lines(lines[:2], str(cap_path), capability.expected)
    _check_lines(lines[2:], str(ovl_path), overlay.expected)
    with pytest.raises(SpecError) as info:
        load_pair(cap_path, ovl_path)
    assert info.value.lines == lines


def test_broken_capability_and_missing_overlay(tmp_path: Path) -> None:
    capability = cap("c", (":4: schema_version:", "2 is not supported"), edits=[("schema_version: 1", "schema_version: 2")])
    cap_path = capability.write(tmp_path)
    missing = tmp_path / "missing.yaml"
    lines = _assert_cli_fails(run_cli("targetgen", "validate", str(cap_path), "--overlay", str(missing)), 2)
    _check_lines(lines[:1], str(cap_path), capability.expected)
    assert lines[1].startswith(f"{missing}: no such file")


def test_overlay_given_as_capability_is_rejected(tmp_path: Path) -> None:
    """Swapping the two files says so in one located line, not a crash or a wall of errors."""
    lines = _assert_cli_fails(run_cli("targetgen", "validate", str(BASE_OVERLAY)))
    assert lines == [f"{BASE_OVERLAY}:3: deployment: this is a deployment overlay, not a capability spec (give it as --overlay)"]
    swapped = _assert_cli_fails(run_cli("targetgen", "validate", str(BASE_OVERLAY), "--overlay", str(BASE_CAPABILITY)))
    assert swapped[0].endswith("this is a deployment overlay, not a capability spec (give it as --overlay)")
    assert swapped[1].startswith(f"{BASE_CAPABILITY}:") and swapped[1].endswith("this is a capability spec, not a deployment overlay (give it as CAPABILITY)")


def test_null_hint_only_for_optional_fields(tmp_path: Path) -> None:
    """'remove the key' is only advised where removing it gives a default."""
    for case in CASES:
        if case.id in ("null-required-section", "null-required-field", "null-list-item", "overlay-deployment-null"):
            with pytest.raises(SpecError) as info:
                (load_capability if case.kind == "capability" else load_overlay)(case.write(tmp_path))
            assert "remove the key" not in info.value.lines[0], info.value.lines[0]


def test_anchors_aliases_and_merge_keys_are_accepted(tmp_path: Path) -> None:
    """Plain YAML reuse still works; errors inside merged mappings still get a line."""
    text = BASE_CAPABILITY.read_text().replace("  model: simulator", "  <<: &acc {model: simulator}")
    path = tmp_path / "merge.yaml"
    path.write_text(text + "references: &refs [a, b]\n")
    assert load_capability(path).model.access.model == "simulator"
    path.write_text(text.replace("{model: simulator}", "{model: simulator, gates: []}"))
    with pytest.raises(SpecError) as info:
        load_capability(path)
    assert info.value.lines == [f"{path}:37: access.gates: unknown field (expected one of: availability_class, "
                                "credential_requirements, model, sdk_requirements, verification_gates)"]


def test_deeply_nested_aliases_are_refused_at_load(tmp_path: Path) -> None:
    """A 'billion laughs' document (10**9 nodes once expanded) is refused while it is composed,
    at the line where its expansion crosses the node limit, before any validation."""
    text = BASE_CAPABILITY.read_text()
    text += "references: &r0 [a, a, a, a, a, a, a, a, a, a]\n"
    text += "".join(f"x{i}: &r{i} [{', '.join([f'*r{i - 1}'] * 10)}]\n" for i in range(1, 9))
    path = tmp_path / "laughs.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_capability(path)
    assert len(info.value.lines) == 1
    assert info.value.lines[0].startswith(f"{path}:45: YAML aliases expand the document to more than 100,000 nodes"), info.value.lines


_MUTATION_TOKENS = [
    "", " ", "\t", ":", "- ", "[", "]", "{", "}", '"', "'", "&a ", "*a", "? ", "null", "~", "true", "1e3", ".nan",
    "0x1F", "2024-01-01", "\n", "#", "<<: ", "|", ">", "---", "...", "\ufeff", "\u2028", "@", "`", "!!int ",
    "!!timestamp ", "!!set ", "!!omap ", "!!binary ", "!!python/none ",
]


def test_random_edits_never_crash_the_loader(tmp_path: Path) -> None:
    """Seeded random edits of the base files: the loader either accepts the file or
    raises SpecError whose lines all start with the file name; nothing else escapes."""
    import random

    rng = random.Random(20240611)
    bases = [(BASE_CAPABILITY.read_text(), load_capability), (BASE_OVERLAY.read_text(), load_overlay)]
    path = tmp_path / "mutant.yaml"
    for _ in range(400):
        text, load = rng.choice(bases)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text) + 1)
            if rng.random() < 0.6:
                text = text[:at] + rng.choice(_MUTATION_TOKENS) + text[at:]
            else:
                text = text[:at] + text[at + rng.randint(1, 8) :]
        path.write_text(text)
        try:
            load(path)
        except SpecError as exc:
            assert exc.lines and all(line.startswith(str(path)) and "\n" not in line for line in exc.lines), (text, exc.lines)


# --- open fact mappings: an extra fact loads and plans; a typo beside it is refused --
#
# Upstream treats these sections as open mappings of hardware facts: merlin
# types their named fields and keeps every other key (issue 8). The section
# that holds each of them is structural, so misspelling the open mapping's own
# key is an unknown field with a did-you-mean hint at FILE:LINE.

OPEN_MAPPINGS = [
    # (kind, path of the open mapping, a fact it may carry, a typo of the mapping's key)
    ("capability", ("geometry", "compute_array"), ("rows", 16), "compute_aray"),
    ("capability", ("geometry", "vector"), ("elen_bits", 64), "vectr"),
    ("capability", ("verification", "golden_model"), ("library", "torch-ref"), "golden_modle"),
    ("capability", ("verification", "simulator"), ("cycle_accurate", True), "simulater"),
    ("capability", ("verification", "rtl"), ("language", "chisel"), "rtll"),
    ("capability", ("verification", "perf_counters"), ("counters", ["cycles", "macs"]), "perf_counter"),
    ("capability", ("verification", "tolerances"), ("bf16", {"atol": 0.01, "rtol": 0.02, "ulp": 2}), "tolerance"),
    ("capability", ("memory", "preferred_layouts"), ("accumulator", "row_major"), "preferred_layout"),
    ("capability", ("memory", "packing"), ("pack_granule_bytes", 64), "packin"),
    ("capability", ("numeric", "quantization"), ("scale_granularity", "per_channel"), "quantisation"),
    ("capability", ("runtime", "synchronization"), ("fences", "release_acquire"), "synchronisation"),
    ("overlay", ("deployment", "chipyard"), ("submodules", ["generators/gemmini"]), "chipyrd"),
    ("overlay", ("deployment", "runtime"), ("uart_baud", 115200), "runtim"),
    ("overlay", ("deployment", "extra"), ("linker_script", "htif.ld"), "extras"),
]
OPEN_IDS = [".".join(path) for _, path, _, _ in OPEN_MAPPINGS]


def _with(kind: str, path: tuple[str, ...], key: str, value: object) -> str:
    """The base file of ``kind`` with ``key: value`` set inside the mapping at ``path``, as YAML text."""
    import yaml

    data = yaml.safe_load((BASE_CAPABILITY if kind == "capability" else BASE_OVERLAY).read_text())
    node = data
    for part in path:
        node = node.setdefault(part, {})
    node[key] = value
    return yaml.safe_dump(data, sort_keys=False)


def _line_of(text: str, key: str) -> int:
    matches = [n for n, line in enumerate(text.splitlines(), 1) if line.lstrip().startswith(f"{key}:")]
    assert len(matches) == 1, (key, matches)
    return matches[0]


@pytest.mark.parametrize("kind, path, fact, typo", OPEN_MAPPINGS, ids=OPEN_IDS)
def test_open_mapping_extra_fact_loads_and_plans(kind: str, path: tuple[str, ...], fact: tuple[str, object], typo: str, tmp_path: Path) -> None:
    from merlin.spec.pairing import spec_warnings
    from merlin.targetgen.planner import build_plan, write_plan

    key, value = fact
    spec_path = tmp_path / f"{kind}.yaml"
    spec_path.write_text(_with(kind, path, key, value))
    cap, ovl = load_pair(spec_path, None) if kind == "capability" else load_pair(BASE_CAPABILITY, spec_path)
    loaded = cap if kind == "capability" else ovl
    assert loaded is not None
    dumped = loaded.model.model_dump()  # the canonical spec keeps the fact as written
    for part in path:
        dumped = dumped[part]
    assert dumped[key] == value
    plan = build_plan(cap, ovl)
    if path == ("verification", "tolerances"):  # a new entry: its typed fields are read, its extra ones are facts
        assert loaded.model.verification.tolerances[key].atol == 0.01
        assert plan.compile_view["facts"][f"verification.tolerances.{key}"] == {"ulp": 2}
    elif kind == "capability":
        assert plan.compile_view["facts"][".".join(path)][key] == value
    else:
        assert plan.deployment_view is not None
        assert plan.deployment_view[path[-1]][key] == value
    target_dir, _ = write_plan(plan, tmp_path / "out")
    view = "compile_view.yaml" if kind == "capability" else "deployment_view.yaml"
    assert key in (target_dir / view).read_text()
    assert [w for w in spec_warnings(cap, ovl) if key in w] == [], "a fact is not a warning"


@pytest.mark.parametrize("kind, path, fact, typo", OPEN_MAPPINGS, ids=OPEN_IDS)
def test_open_mapping_typo_in_structural_section_is_refused(kind: str, path: tuple[str, ...], fact: tuple[str, object], typo: str, tmp_path: Path) -> None:
    key, value = fact
    text = _with(kind, path[:-1], typo, {key: value})
    spec_path = tmp_path / f"{kind}.yaml"
    spec_path.write_text(text)
    load = load_capability if kind == "capability" else load_overlay
    with pytest.raises(SpecError) as info:
        load(spec_path)
    where = f"{spec_path}:{_line_of(text, typo)}: {'.'.join(path[:-1])}.{typo}: "
    assert info.value.lines == [where + f"unknown field (did you mean '{path[-1]}'?)"]


def test_open_mappings_cli_plan_shows_facts(tmp_path: Path) -> None:
    """Through the CLI: the stored spec and overlay with a fact in every open mapping
    (tests/bad_inputs/open_facts_*.yaml) plan with --strict, and the views show the facts."""
    import yaml

    cap_path, ovl_path = DATA / "open_facts_capability.yaml", DATA / "open_facts_overlay.yaml"
    stored = {"capability": yaml.safe_load(cap_path.read_text()), "overlay": yaml.safe_load(ovl_path.read_text())}
    for kind, path, (key, value), _ in OPEN_MAPPINGS:  # the stored files carry every case of the table
        node = stored[kind]
        for part in path:
            node = node[part]
        assert node[key] == value, (kind, path, key)
    result = run_cli(
        "targetgen", "plan", str(cap_path), "--overlay", str(ovl_path), "--out-dir", str(tmp_path / "out"), "--strict", "--json"
    )
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["warnings"] == []
    compile_view = yaml.safe_load((tmp_path / "out" / "base_target" / "compile_view.yaml").read_text())
    deployment_view = yaml.safe_load((tmp_path / "out" / "base_target" / "deployment_view.yaml").read_text())
    assert compile_view["facts"]["geometry.compute_array"] == {"rows": 16}
    assert compile_view["facts"]["verification.tolerances.bf16"] == {"ulp": 2}
    assert compile_view["facts"]["runtime.synchronization"] == {"fences": "release_acquire"}
    assert compile_view["vector"]["elen_bits"] == 64
    assert deployment_view["chipyard"]["submodules"] == ["generators/gemmini"]
    assert deployment_view["runtime"]["uart_baud"] == 115200
    assert deployment_view["extra"]["linker_script"] == "htif.ld"


def test_fact_one_letter_off_a_typed_field_is_a_located_warning(tmp_path: Path) -> None:
    """`rtl` beside a tolerance's typed `atol` is kept as a fact, but said out loud (and --strict refuses it)."""
    text = BASE_CAPABILITY.read_text().replace("    int8: {atol: 0, rtol: 0}", "    int8: {atol: 0, rtl: 0}")
    path = tmp_path / "capability.yaml"
    path.write_text(text)
    loaded = load_capability(path)
    assert loaded.model.verification.tolerances["int8"].facts() == {"rtl": 0}
    assert loaded.warnings == (f"{path}:36: verification.tolerances.int8.rtl: warning: unknown fact kept as written (did you mean 'rtol'?)",)
    ok = run_cli("targetgen", "validate", str(path))
    assert ok.returncode == 0 and loaded.warnings[0] in ok.stderr
    strict = run_cli("targetgen", "validate", str(path), "--strict")
    assert strict.returncode == 2 and strict.stderr.splitlines()[0] == loaded.warnings[0]


def test_credential_requirements_as_one_name(tmp_path: Path) -> None:
    """Upstream writes `credential_requirements: aihub_api_token`: one credential, gated like a one-element list."""
    from merlin.targetgen.planner import build_plan

    text = (
        BASE_CAPABILITY.read_text()
        .replace("  verification_gates: [compile_only, smoke_run]", "  credential_requirements: aihub_api_token")
        .replace("  model: simulator", "  model: cloud_service")  # every task of a cloud target is credential-gated
    )
    path = tmp_path / "capability.yaml"
    path.write_text(text)
    cap = load_capability(path)
    assert [c.name for c in cap.model.access.credentials()] == ["aihub_api_token"]
    listed = tmp_path / "listed.yaml"
    listed.write_text(text.replace("credential_requirements: aihub_api_token", "credential_requirements: [{name: aihub_api_token}]"))
    as_list = build_plan(load_capability(listed))
    plan = build_plan(cap)
    assert plan.support_plan["access"]["credential_requirements"] == ["aihub_api_token"]
    gated = [t["credential_requirements"] for t in plan.tasks if t["credential_requirements"]]
    assert gated and gated == [t["credential_requirements"] for t in as_list.tasks if t["credential_requirements"]]
    assert gated[0] == [{"name": "aihub_api_token", "env": "MERLIN_CREDENTIAL_AIHUB_API_TOKEN"}]
