"""Pydantic models for the capability spec and the deployment overlay.

The format is upstream Merlin's (``schema_version: 1``). Structural sections
are strict (``Strict``): an unknown key is an error with a did-you-mean hint.
The sections upstream treats as open mappings of hardware facts (``Facts``)
type only their named fields and keep every other key as a fact, in the
model and in its dump. A boolean is never accepted as a number, enumerations
are closed, optional sections have defaults but may not be written as
``null``. Names used as directory names follow ``merlin.spec.names``, the rule
``execute`` applies. Models are built on first use (``defer_build``), so
importing this module costs little.
"""

# (no `from __future__ import annotations`: pydantic would have to evaluate every annotation string)

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from merlin.spec.names import NAME_CHARS, NAME_PATTERN


def _no_dotdot(value: str) -> str:
    if ".." in value:
        raise PydanticCustomError("string_pattern_mismatch", "String should match pattern '{pattern}'", {"pattern": NAME_PATTERN})
    return value


# A name that is also used as a directory name: no separators, no ".." (merlin.spec.names).
SafeName = Annotated[
    str,
    Field(pattern=NAME_CHARS),
    AfterValidator(_no_dotdot),
    WithJsonSchema({"type": "string", "pattern": NAME_PATTERN}),
]
NonEmpty = Annotated[str, Field(min_length=1)]


def _exactly_int_one(value: Any) -> Any:
    # Literal[1] alone accepts true and 1.0 even in strict mode (True == 1 == 1.0).
    if type(value) is not int:
        raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": "1"})
    return value


SchemaVersion = Annotated[Literal[1], BeforeValidator(_exactly_int_one)]

ExecutionKind = Literal[
    "cpu_only",
    "vector_cpu_extension",
    "matrix_coprocessor",
    "rocc_accelerator",
    "structured_npu",
    "simt_gpu",
    "mixed",
]
RecoveryStage = Literal["post_global_optimization", "llvmcpu_codegen", "text_isa_export", "runtime_only"]
ExposureKind = Literal["llvm_intrinsics", "llvm_backend_features", "custom_exporter", "text_isa", "hal_runtime", "none"]
AccessModel = Literal["local_device", "remote_device", "cloud_service", "simulator", "board", "lab_hardware"]
AvailabilityClass = Literal["always_local", "lab_hardware", "cloud_token_required", "sdk_install_required"]
VerificationGate = Literal["compile_only", "device_query", "smoke_run", "profile_run"]
DeploymentMode = Literal["board", "firesim", "bare-metal", "simulator", "runtime-driver", "host-emulation"]


class Strict(BaseModel):
    """A structural section: every key is known."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True, allow_inf_nan=False)


class Facts(BaseModel):
    """An open mapping of hardware facts: the named fields are typed, any other key is kept as a fact."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True, defer_build=True, allow_inf_nan=False)

    def facts(self) -> dict[str, Any]:
        """The keys beyond the typed fields, as written."""
        return dict(self.__pydantic_extra__ or {})


# --- capability spec -------------------------------------------------------


class Target(Strict):
    name: SafeName = Field(description="Identifier; also the output directory name.")
    display_name: str | None = None
    vendor: str | None = None
    maturity: str | None = Field(default=None, description="Free text such as planned, experimental, stable.")


class Platform(Strict):
    host_isa: NonEmpty
    operating_systems: list[NonEmpty] = Field(default_factory=list)
    environments: list[NonEmpty] = Field(
        default_factory=list, description="Where the target runs, e.g. board, firesim, simulator, runtime-driver."
    )


class ExecutionModel(Strict):
    kind: ExecutionKind
    attachment: str | None = None
    submission_model: str | None = None
    compiler_recovery_stage: RecoveryStage


class Exposure(Strict):
    kind: ExposureKind
    needs_llvm_backend_changes: bool = False
    needs_new_intrinsics: bool = False
    needs_new_feature_bits: bool = False


class StateModel(Strict):
    kind: NonEmpty


class RegisterConstraints(Strict):
    accumulator_register_file: str | None = None
    even_alignment_required: bool = False
    vl_dependent: bool = False


class Isa(Strict):
    base: NonEmpty
    features: list[NonEmpty] = Field(default_factory=list)
    exposure: Exposure
    state_model: StateModel | None = None
    register_constraints: RegisterConstraints = Field(default_factory=RegisterConstraints)


class ComputeOp(Strict):
    name: NonEmpty
    native: bool = True
    type_triples: list[NonEmpty] = Field(default_factory=list)


class Operations(Strict):
    compute: list[ComputeOp] = Field(default_factory=list, min_length=1, description="At least one operation when given.")
    movement: list[NonEmpty] = Field(default_factory=list)
    synchronization: list[NonEmpty] = Field(default_factory=list)


class ComputeArray(Facts):
    """Dimensions such as rows, cols and depth are facts."""

    kind: NonEmpty | None = None


class VectorGeometry(Facts):
    vlen_bits: Annotated[int, Field(gt=0)] | None = None
    dlen_bits: Annotated[int, Field(gt=0)] | None = None


Tile = Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=1, max_length=4)]


class Geometry(Strict):
    compute_array: ComputeArray | None = None
    vector: VectorGeometry = Field(default_factory=VectorGeometry)
    native_tile_options: list[Tile] = Field(default_factory=list)
    preferred_tiles: list[Tile] = Field(default_factory=list)


class MemorySpace(Strict):
    name: NonEmpty
    kind: NonEmpty


class Layouts(Facts):
    lhs: str | None = None
    rhs: str | None = None
    result: str | None = None


class Packing(Facts):
    requires_pack: bool = False
    requires_unpack: bool = False
    supports_k0_eq_1_direct_pack: bool = False


class Memory(Strict):
    spaces: list[MemorySpace] = Field(default_factory=list, min_length=1, description="At least one space when given.")
    preferred_layouts: Layouts = Field(default_factory=Layouts)
    packing: Packing = Field(default_factory=Packing)


class Quantization(Facts):
    requantize_native: bool = False
    clamp_native: bool = False


class Numeric(Strict):
    legal_type_triples: list[NonEmpty] = Field(default_factory=list)
    quantization: Quantization = Field(default_factory=Quantization)
    rounding_modes: list[NonEmpty] = Field(default_factory=list)
    saturation: bool = False


class Driver(Strict):
    backend_id: str | None = None
    uri_schemes: list[NonEmpty] = Field(default_factory=list)


class RuntimeSync(Facts):
    semaphores: bool = False
    timelines: bool = False


class Runtime(Strict):
    required: bool
    executable_format: str | None = None
    driver: Driver = Field(default_factory=Driver)
    synchronization: RuntimeSync = Field(default_factory=RuntimeSync)


class Facility(Facts):
    """A verification facility (golden model, simulator, RTL, perf counters)."""

    available: bool = False
    kind: str = "none"


class Tolerance(Facts):
    atol: Annotated[float, Field(ge=0)] | None = None
    rtol: Annotated[float, Field(ge=0)] | None = None


class Verification(Strict):
    golden_model: Facility = Field(default_factory=Facility)
    simulator: Facility = Field(default_factory=Facility)
    rtl: Facility = Field(default_factory=Facility)
    perf_counters: Facility = Field(default_factory=Facility)
    tolerances: dict[str, Tolerance] = Field(default_factory=dict)


class Credential(Strict):
    """A credential the target needs; only its presence is ever recorded."""

    name: SafeName
    env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = Field(
        default=None, description="Environment variable holding it; default MERLIN_CREDENTIAL_<NAME>."
    )
    description: str | None = None


class Access(Strict):
    model: AccessModel
    sdk_requirements: list[NonEmpty] = Field(default_factory=list)
    credential_requirements: Literal["none"] | SafeName | list[Credential] = Field(
        default="none", description="'none', one credential name (upstream's form) or a list of credentials."
    )
    availability_class: AvailabilityClass
    verification_gates: list[VerificationGate] = Field(default_factory=list, json_schema_extra={"uniqueItems": True})

    @field_validator("verification_gates")
    @classmethod
    def _unique_gates(cls, gates: list[str]) -> list[str]:
        dupes = sorted({g for g in gates if gates.count(g) > 1})
        if dupes:
            raise ValueError(f"duplicate gate {', '.join(dupes)} (expected each gate at most once)")
        return gates

    def credentials(self) -> list[Credential]:
        """The required credentials; upstream's single name is a one-element list."""
        req = self.credential_requirements
        if req == "none":
            return []
        if isinstance(req, str):
            return [Credential(name=req)]
        return list(req)


class CapabilitySpec(Strict):
    """Hardware facts about one target (``capability.yaml``)."""

    schema_version: SchemaVersion
    target: Target
    platform: Platform
    execution_model: ExecutionModel
    isa: Isa
    operations: Operations = Field(default_factory=Operations)
    geometry: Geometry = Field(default_factory=Geometry)
    memory: Memory = Field(default_factory=Memory)
    numeric: Numeric = Field(default_factory=Numeric)
    runtime: Runtime
    verification: Verification = Field(default_factory=Verification)
    access: Access
    references: list[NonEmpty] = Field(default_factory=list)


# --- deployment overlay ----------------------------------------------------


class Chipyard(Facts):
    repo: str | None = None
    branch: str | None = None
    sha: Annotated[str, Field(pattern=r"^[0-9a-f]{7,40}$")] | None = None
    config_class: str | None = None


class DeploymentRuntime(Facts):
    simulator: str | None = None
    workload: str | None = None
    execution_mode: str | None = None
    backend: str | None = None
    transport: str | None = None
    board: str | None = None


class Preflight(Strict):
    """How this deployment checks its prerequisites (merlin extension to the upstream format)."""

    probes: dict[NonEmpty, NonEmpty] = Field(
        default_factory=dict, description="SDK name -> shell command that exits 0 when the SDK is usable."
    )
    device_probe: str | None = Field(default=None, description="Shell command that exits 0 when the device answers.")
    credentials: dict[SafeName, Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        default_factory=dict, description="Credential name -> environment variable that holds it."
    )
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 60.0


class LeaseNeed(Strict):
    """One bundle of lab hardware (merlin extension): POOL[:COUNT][,k=v...] of ``--lease``."""

    pool: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")] = Field(description="Inventory pool, e.g. firesim_fpga.")
    count: Annotated[int, Field(ge=1, le=1024)] = 1
    labels: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")], NonEmpty] = Field(
        default_factory=dict, description="Labels the items must carry, e.g. board: u250."
    )


class Deployment(Strict):
    name: SafeName
    mode: DeploymentMode
    build_profile: str | None = None
    compile_target: str | None = None
    compile_hw: str | None = None
    hardware_recipe: str | None = None
    chipyard: Chipyard = Field(default_factory=Chipyard)
    runtime: DeploymentRuntime = Field(default_factory=DeploymentRuntime)
    preflight: Preflight = Field(default_factory=Preflight)
    resources: list[LeaseNeed] = Field(
        default_factory=list,
        description="Lab hardware the target holds while it executes (merlin extension): executing the target queues for a lease on all of it, runs, then releases (docs/leases.md).",
    )
    extra: dict[str, Any] = Field(default_factory=dict, description="Free-form deployment facts.")


EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class RunEnvironment(Strict):
    """The run environment of the runs TargetGen starts: the fields of ``jobs submit --env-file``
    (docs/environments.md); paths are relative to the overlay file. merlin itself joins it."""

    python: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+$")] | None = Field(default=None, description="Python X.Y (default: the submitter's).")
    requirements: NonEmpty | None = Field(default=None, description="A requirements.txt, relative to the overlay.")
    lock: NonEmpty | None = Field(default=None, description="A uv.lock or pylock.toml, relative to the overlay.")
    packages: list[NonEmpty] = Field(default_factory=list, description="More requirements (PEP 508).")
    index_url: list[NonEmpty] = Field(default_factory=list, description="Package indexes, the first the default.")
    find_links: list[NonEmpty] = Field(default_factory=list, description="Wheel directories (relative to the overlay) or URLs.")
    no_index: bool = Field(default=False, description="Ask no package index (find_links only).")
    working_dir: NonEmpty | None = Field(default=None, description="A directory snapshotted at submit, relative to the overlay.")
    env_vars: dict[EnvName, str] = Field(default_factory=dict, description="The command's environment.")
    secret_env: list[EnvName] = Field(default_factory=list, description="Names whose values are read from the submitter's environment at launch.")


class DeploymentOverlay(Strict):
    """Where and how a target runs (``overlays/<name>.yaml``)."""

    schema_version: SchemaVersion
    deployment: Deployment
    runtime: RunEnvironment | None = Field(default=None, description="The run environment of the runs TargetGen starts (merlin extension; docs/environments.md).")

