"""Installing like a user: the wheel and sdist, `terraform-provider-immuta install` into fresh
virtual environments and HOMEs, `terraform init` with no CLI configuration, lock files that hold
across machines, and the release zip through a packed filesystem mirror and a private registry.

Everything is real: `python -m build` (one build per test session, shared by the xdist
workers), pip, the installed launcher, the terraform CLI, PostgreSQL 17, gpg.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.server
import importlib.metadata
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
import threading
import tomllib
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import Raw, Terraform, connection_block, provider_block, resource
from harness.plugin import make_client_certificate
from harness.postgres import PostgresServer
from packaging.requirements import Requirement

from tfprovider_immuta_pg import __version__
from tfprovider_immuta_pg.install import (
    archive_bytes,
    archive_name,
    cli_config_files,
    executable_name,
    has_provider_installation,
    launcher_text,
    provider_installation_snippet,
    sums_name,
    write_archives,
)

REPO = Path(__file__).resolve().parents[1]
VERSION = __version__
ADDRESS = "registry.terraform.io/immuta-pg/immuta"
PLATFORM = "linux_amd64"
RUNTIME_DEPENDENCIES = {"protobuf", "msgpack", "psycopg", "boto3"}
REQUIRED = (
    'terraform {\n  required_providers {\n    immuta = { source = "immuta-pg/immuta" }\n  }\n}\n'
)
FUNCTION_OUTPUT = (
    'output "arn" {\n  value = provider::immuta::rds_db_user_arn('
    '"us-east-1", "111122223333", "db-ABC", "alice")\n}\n'
)
ARN = "arn:aws:rds-db:us-east-1:111122223333:dbuser:db-ABC/alice"
NO_PYTHON = (
    f"terraform-provider-immuta {VERSION}: no Python environment is registered for this "
    f"version; run: pip install tfprovider-immuta-pg=={VERSION} && terraform-provider-immuta "
    "install"
)

pytestmark = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform not on PATH")


def user_env(home: Path, **extra: str) -> dict[str, str]:
    """A user's environment: this HOME, and no CLI configuration file named at all."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("TF_", "TERRAFORM_", "PG", "AWS_", "IMMUTA_", "PLUGIN_", "XDG_", "PYTHON")
        )
        and k != "VIRTUAL_ENV"
    }
    env.update(HOME=str(home), CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_INPUT="0")
    env.update(extra)
    return env


def terraform_for(workdir: Path, home: Path, **extra: str) -> Terraform:
    terraform = Terraform(workdir)
    terraform.env = user_env(home, **extra)
    return terraform


def lock_hashes(workdir: Path) -> set[str]:
    return set(re.findall(r'"((?:h1|zh):[^"]+)"', (workdir / ".terraform.lock.hcl").read_text()))


def run(*argv: str | Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(a) for a in argv], env=env, capture_output=True, text=True, timeout=300
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{argv} exited {result.returncode}\n{result.stdout}{result.stderr}")
    return result


# ---------------------------------------------------------------- the release, built once


@dataclass(frozen=True)
class Release:
    folder: Path

    @property
    def wheel(self) -> Path:
        return next(self.folder.glob("*.whl"))

    @property
    def sdist(self) -> Path:
        return next(self.folder.glob("*.tar.gz"))

    @property
    def zip(self) -> Path:
        return self.folder / archive_name(PLATFORM)

    @property
    def sums(self) -> Path:
        return self.folder / sums_name()


def made_once(
    tmp_path_factory: pytest.TempPathFactory,
    worker_id: str,
    name: str,
    make: Callable[[Path], None],
) -> Path:
    """A folder that `make` fills once per test session; the xdist workers share it, taking
    turns through a file lock."""
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent
    folder = shared / name
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / f"{name}.done").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            (shared / f"{name}.done").touch()
    return folder


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Release:
    """`python -m build` (sdist, then the wheel from the sdist) and `archive`, once."""

    def build(folder: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
        run(sys.executable, "-m", "build", "--outdir", folder, REPO, env=env)
        archive = ("-m", "tfprovider_immuta_pg.install", "archive", "--out", folder)
        run(sys.executable, *archive, env=env)

    return Release(made_once(tmp_path_factory, worker_id, "install-release", build))


@dataclass(frozen=True)
class Install:
    """One user: a fresh virtual environment and a HOME under `root`."""

    root: Path

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def output(self) -> str:
        """What `terraform-provider-immuta install` printed."""
        return (self.root / "install-output").read_text()

    @property
    def python(self) -> Path:
        return self.venv / "bin/python"

    @property
    def command(self) -> Path:
        return self.venv / "bin/terraform-provider-immuta"

    @property
    def launcher(self) -> Path:
        return self.package_dir / executable_name()

    @property
    def package_dir(self) -> Path:
        return self.home / ".terraform.d/plugins" / ADDRESS / VERSION / PLATFORM

    @property
    def pointer(self) -> Path:
        return self.home / f".local/share/terraform-provider-immuta/{VERSION}/python"

    def env(self, **extra: str) -> dict[str, str]:
        return user_env(self.home, **extra)

    def run(self, *args: str, home: Path | None = None, check: bool = True, **extra: str):
        return run(self.command, *args, env=user_env(home or self.home, **extra), check=check)


def make_install(root: Path, wheel: Path, *requirements: str) -> None:
    user = Install(root)
    user.home.mkdir(parents=True)
    run(sys.executable, "-m", "venv", "--without-pip", user.venv, env=dict(os.environ))
    # This environment's pip installs into the fresh one (pip's cache keeps it quick).
    pip = (sys.executable, "-m", "pip", "--python", user.python, "install", "-q")
    run(*pip, wheel, *requirements, env=dict(os.environ))
    (root / "install-output").write_text(user.run("install").stdout)


@pytest.fixture(scope="session")
def installs(
    release: Release, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> tuple[Install, ...]:
    """Two users: different paths (with spaces), and the second on the oldest protobuf the
    package accepts (the build's gencode must run on it). Tests change neither: they copy a
    HOME before changing it."""
    roots = ("first user", "second/user two")

    def make(folder: Path) -> None:
        make_install(folder / roots[0], release.wheel)
        make_install(folder / roots[1], release.wheel, f"protobuf=={protobuf_floor()}")

    folder = made_once(tmp_path_factory, worker_id, "install-users", make)
    return tuple(Install(folder / root) for root in roots)


def protobuf_floor() -> str:
    spec = next(d for d in pyproject()["project"]["dependencies"] if d.startswith("protobuf"))
    return re.search(r">=([\d.]+)", spec).group(1)


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


# ---------------------------------------------------------------- packaging


def test_wheel_carries_the_generated_modules_and_only_run_time_dependencies(
    release: Release,
) -> None:
    with zipfile.ZipFile(release.wheel) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(f"tfprovider_immuta_pg-{VERSION}.dist-info/METADATA").decode()
        entry_points = wheel.read(f"tfprovider_immuta_pg-{VERSION}.dist-info/entry_points.txt")
        gencode = wheel.read("tfprovider_immuta_pg/protocol/gen/tfplugin6_pb2.py").decode()
    for module in ("tfplugin6", "grpc_controller", "grpc_stdio"):
        assert f"tfprovider_immuta_pg/protocol/gen/{module}_pb2.py" in names
        assert f"tfprovider_immuta_pg/protocol/gen/{module}_pb2_grpc.py" in names
    assert "tfprovider_immuta_pg/install.py" in names
    assert not [n for n in names if n.startswith(("tools/", "tests/", "protogen"))]
    required = [
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert {re.split(r"[\[<>=;]", r)[0] for r in required} == RUNTIME_DEPENDENCIES
    assert b"terraform-provider-immuta = tfprovider_immuta_pg.install:main" in entry_points
    # The gencode was made for the lowest protobuf runtime the package declares.
    floor = protobuf_floor()
    assert f"# Protobuf Python Version: {floor}" in gencode

    with tarfile.open(release.sdist) as sdist:
        members = {m.name.split("/", 1)[1] for m in sdist.getmembers() if "/" in m.name}
    assert {"proto/tfplugin6.proto", "tools/protogen.py", "pyproject.toml"} <= members
    assert not [m for m in members if "/protocol/gen/" in m], "the sdist regenerates them"


def test_generator_pins_agree() -> None:
    """One grpcio-tools version makes the gencode everywhere, and the declared protobuf range
    is the one that version's gencode needs (grpcio-tools states it as its own requirement)."""
    config = pyproject()
    build_pin = next(r for r in config["build-system"]["requires"] if r.startswith("grpcio-tools"))
    dev_pin = next(
        r.split("#")[0].strip()
        for r in config["project"]["optional-dependencies"]["dev"]
        if r.startswith("grpcio-tools")
    )
    assert build_pin == dev_pin == f"grpcio-tools=={importlib.metadata.version('grpcio-tools')}"
    tools_needs = next(
        Requirement(r)
        for r in importlib.metadata.requires("grpcio-tools")
        if r.startswith("protobuf")
    )
    ours = next(
        Requirement(d) for d in config["project"]["dependencies"] if d.startswith("protobuf")
    )
    assert ours.specifier == tools_needs.specifier, (str(ours), str(tools_needs))


def test_archive_writes_one_zip_per_platform_and_their_sums(tmp_path: Path) -> None:
    written = write_archives(tmp_path, ["linux_arm64", "linux_amd64", "linux_amd64"])
    zips = [tmp_path / archive_name(p) for p in ("linux_amd64", "linux_arm64")]
    assert written == [*zips, tmp_path / sums_name()]
    digest = hashlib.sha256(archive_bytes()).hexdigest()
    assert (tmp_path / sums_name()).read_text() == "".join(f"{digest}  {z.name}\n" for z in zips)


def test_release_zip_is_reproducible_and_matches_sha256sums(release: Release) -> None:
    data = release.zip.read_bytes()
    assert data == archive_bytes(), "the same bytes from any build"
    digest = hashlib.sha256(data).hexdigest()
    assert release.sums.read_text() == f"{digest}  {archive_name(PLATFORM)}\n"
    with zipfile.ZipFile(release.zip) as archive:
        (entry,) = archive.infolist()
        assert entry.filename == executable_name()
        assert entry.date_time == (1980, 1, 1, 0, 0, 0)
        assert entry.external_attr >> 16 == 0o100755
        assert archive.read(entry).decode() == launcher_text()


# ---------------------------------------------------------------- install


def test_installs_are_identical_and_hold_no_path(installs: tuple[Install, ...]) -> None:
    first, second = installs
    for user in installs:
        assert sorted(p.name for p in user.package_dir.iterdir()) == [executable_name()]
        assert user.launcher.stat().st_mode & 0o777 == 0o755
        assert f"installed: {user.launcher}" in user.output
        assert "finds immuta-pg/immuta there with no CLI configuration" in user.output
        assert user.pointer.read_text() == f"{user.python}\n"
    assert first.launcher.read_bytes() == second.launcher.read_bytes() == launcher_text().encode()
    text = first.launcher.read_text()
    for user in installs:
        assert str(user.venv) not in text and str(user.home) not in text
    assert "/tmp" not in text and "site-packages" not in text


def test_init_and_apply_with_no_cli_configuration_and_one_lock_file_for_both(
    installs: tuple[Install, ...], pg17: PostgresServer, tmp_path: Path
) -> None:
    locks = []
    databases = [pg17.temp_database(), pg17.temp_database()]
    try:
        for user, db in zip(installs, databases, strict=True):
            terraform = terraform_for(tmp_path / user.home.parent.name, user.home)
            terraform.write(
                provider_block(pg17)
                + connection_block(db.host, db.port, db.name)
                + resource(
                    "immuta_user_mapping",
                    "alice",
                    connection_id=Raw("immuta_postgres_connection.main.id"),
                    immuta_user="alice@example.com",
                )
            )
            init = terraform.init()
            assert "Installing immuta-pg/immuta v0.1.0" in init.stdout
            installed = terraform.workdir / ".terraform/providers" / ADDRESS / VERSION / PLATFORM
            assert installed.resolve() == user.package_dir.resolve()
            terraform.apply()
            mapping = terraform.resources()["immuta_user_mapping.alice"]
            assert mapping["immuta_user"] == "alice@example.com"
            with db.connect() as conn:
                rows = conn.execute("SELECT immuta_user FROM immuta.user_mappings").fetchall()
            assert rows == [("alice@example.com",)]
            assert terraform.plan().returncode == 0
            locks.append(lock_hashes(terraform.workdir))
            terraform.destroy()
        assert locks[0] == locks[1] and len(locks[0]) == 1, locks

        # The first user's lock file, committed, passes `terraform init` for the second.
        shared = terraform_for(tmp_path / "shared", installs[1].home)
        shared.write(FUNCTION_OUTPUT)
        tf_dir = tmp_path / installs[0].home.parent.name
        shutil.copy(tf_dir / ".terraform.lock.hcl", shared.workdir)
        shared.init()
        shared.apply()
        assert shared.outputs() == {"arn": ARN}
        assert lock_hashes(shared.workdir) == locks[0]
    finally:
        for db in databases:
            db.drop()


def test_the_launcher_runs_the_environment_it_was_installed_with(
    installs: tuple[Install, ...],
) -> None:
    first, second = installs
    for user in installs:
        version = run(user.launcher, "--version", env=user.env())
        assert version.stdout == f"terraform-provider-immuta {VERSION} ({user.python})\n"
    # The variable overrides the pointer.
    overridden = run(
        first.launcher, "--version", env=first.env(TF_PROVIDER_IMMUTA_PYTHON=str(second.python))
    )
    assert f"({second.python})" in overridden.stdout
    # From any working directory, started by any relative or absolute path.
    relative = subprocess.run(
        [f"./{executable_name()}", "--version"],
        cwd=first.package_dir,
        env=first.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"({first.python})" in relative.stdout


def test_without_a_registered_python_the_launcher_says_what_to_run(
    installs: tuple[Install, ...], tmp_path: Path
) -> None:
    first = installs[0]
    empty_home = tmp_path / "home"
    empty_home.mkdir()
    alone = run(first.launcher, env=user_env(empty_home), check=False)
    assert (alone.returncode, alone.stdout, alone.stderr) == (1, "", NO_PYTHON + "\n")

    # Under Terraform the same line goes to stdout, where Terraform shows it.
    home = tmp_path / "home-without-pointer"
    shutil.copytree(first.home / ".terraform.d", home / ".terraform.d")
    terraform = terraform_for(tmp_path / "tf", home)
    terraform.write(FUNCTION_OUTPUT)
    terraform.init()
    failed = terraform.apply(check=False)
    assert failed.returncode == 1
    assert NO_PYTHON in failed.text
    assert "Traceback" not in failed.output
    assert not (terraform.workdir / "terraform.tfstate").exists()

    gone = run(
        first.launcher,
        env=first.env(TF_PROVIDER_IMMUTA_PYTHON="/nonexistent/bin/python"),
        check=False,
    )
    assert gone.returncode == 1 and gone.stdout == ""
    assert gone.stderr == (
        f"terraform-provider-immuta {VERSION}: the registered Python /nonexistent/bin/python is "
        f"missing or not executable; run: pip install tfprovider-immuta-pg=={VERSION} && "
        "terraform-provider-immuta install\n"
    )


def test_a_launcher_of_another_version_refuses_this_environment(
    installs: tuple[Install, ...], tmp_path: Path
) -> None:
    first = installs[0]
    other = tmp_path / executable_name("9.9.9")
    other.write_text(launcher_text("9.9.9"))
    other.chmod(0o755)
    result = run(other, env=first.env(TF_PROVIDER_IMMUTA_PYTHON=str(first.python)), check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(
        f"terraform-provider-immuta 9.9.9: the Python environment registered for it "
        f"({first.python}) has version {VERSION}; run: pip install tfprovider-immuta-pg==9.9.9"
    )
    assert result.stderr.count("\n") == 1


def test_reinstall_is_idempotent_and_clears_the_provider_directory(
    installs: tuple[Install, ...], tmp_path: Path
) -> None:
    first = installs[0]
    home = tmp_path / "home"
    shutil.copytree(first.home, home, symlinks=True)
    launcher = home / first.launcher.relative_to(first.home)
    before = launcher.stat().st_mtime_ns
    again = first.run("install", home=home).stdout
    assert f"{VERSION} already installed, unchanged: {launcher}" in again
    assert f"Python environment: {first.python} (unchanged)" in again
    assert launcher.stat().st_mtime_ns == before
    override = "/opt/other/bin/python"
    noted = first.run("install", home=home, TF_PROVIDER_IMMUTA_PYTHON=override).stdout
    assert f"Note: TF_PROVIDER_IMMUTA_PYTHON={override} is set; where it is, it takes" in noted

    stray = launcher.parent / "notes.txt"
    stray.write_text("a file here would change the h1: hash")
    launcher.write_text("#!/bin/sh\n# an older launcher\n")
    repaired = first.run("install", home=home).stdout
    assert f"removed {stray} (not part of the provider)" in repaired
    assert f"{VERSION} installed: {launcher}" in repaired
    assert sorted(p.name for p in launcher.parent.iterdir()) == [executable_name()]
    assert launcher.read_text() == launcher_text()


def test_uninstall_removes_what_install_wrote(
    installs: tuple[Install, ...], tmp_path: Path
) -> None:
    first = installs[0]
    home = tmp_path / "home"
    (home / ".terraform.d/plugins/registry.terraform.io/hashicorp").mkdir(parents=True)
    first.run("install", home=home)
    removed = first.run("uninstall", home=home).stdout.splitlines()
    launcher = home / first.launcher.relative_to(first.home)
    pointer = home / first.pointer.relative_to(first.home)
    assert removed == [f"removed {launcher}", f"removed {pointer}"]
    # Empty folders go; the mirror and what else it holds stay.
    assert not (home / ".terraform.d/plugins/registry.terraform.io/immuta-pg").exists()
    assert (home / ".terraform.d/plugins/registry.terraform.io/hashicorp").is_dir()
    assert not (home / ".local/share/terraform-provider-immuta").exists()
    assert first.run("uninstall", home=home).stdout == (
        f"terraform-provider-immuta {VERSION} was not installed in {home}/.terraform.d/plugins\n"
    )


def test_with_a_provider_installation_block_install_prints_what_to_add(
    installs: tuple[Install, ...], tmp_path: Path
) -> None:
    """Terraform ignores the implied mirrors then; the printed block, used as the CLI
    configuration, makes `terraform init` find the provider."""
    first = installs[0]
    home = tmp_path / "home"
    home.mkdir()
    rc = home / ".terraformrc"
    rc.write_text("provider_installation {\n  direct {}\n}\n")
    output = first.run("install", home=home).stdout
    mirror = home / ".terraform.d/plugins"
    assert f"Your CLI configuration ({rc}) has a provider_installation block" in output
    block = output[output.index("provider_installation {") :]
    assert block == (
        "provider_installation {\n  filesystem_mirror {\n"
        f'    path    = "{mirror}"\n    include = ["immuta-pg/immuta"]\n  }}\n'
        '  direct {\n    exclude = ["immuta-pg/immuta"]\n  }\n}\n'
    )
    rc.write_text(block)
    terraform = terraform_for(tmp_path / "tf", home)
    terraform.write(FUNCTION_OUTPUT)
    terraform.init()
    terraform.apply()
    assert terraform.outputs() == {"arn": ARN}


def test_team_mirror_directory_unpacked_and_packed(
    installs: tuple[Install, ...], release: Release, tmp_path: Path
) -> None:
    first = installs[0]
    home, team = tmp_path / "home", tmp_path / "team mirror"
    home.mkdir()
    output = first.run("install", "--dir", str(team), home=home).stdout
    assert f"{team} is not a directory Terraform searches by itself" in output
    launcher = team / ADDRESS / VERSION / PLATFORM / executable_name()
    assert launcher.read_bytes() == first.launcher.read_bytes()
    assert (home / first.pointer.relative_to(first.home)).is_file(), "this machine's Python"
    assert not (home / ".terraform.d").exists()

    packed = first.run("install", "--dir", str(team), "--packed", home=home).stdout
    archive = team / ADDRESS / archive_name(PLATFORM)
    assert f"installed: {archive}" in packed
    assert archive.read_bytes() == release.zip.read_bytes()

    (home / ".terraformrc").write_text(output[output.index("provider_installation {") :])
    terraform = terraform_for(tmp_path / "tf", home)
    terraform.write(FUNCTION_OUTPUT)
    terraform.init()
    terraform.apply()
    assert terraform.outputs() == {"arn": ARN}
    assert lock_hashes(terraform.workdir) == lock_hashes_of(first, tmp_path / "reference")


def lock_hashes_of(user: Install, workdir: Path) -> set[str]:
    """The hashes `terraform init` locks for `user`'s implied-mirror install."""
    terraform = terraform_for(workdir, user.home)
    terraform.write(FUNCTION_OUTPUT)
    terraform.init()
    return lock_hashes(workdir)


# ---------------------------------------------------------------- release archives


def test_packed_filesystem_mirror_installs_the_release_zip(
    installs: tuple[Install, ...], release: Release, tmp_path: Path
) -> None:
    first = installs[0]
    mirror = tmp_path / "packed"
    (mirror / ADDRESS).mkdir(parents=True)
    shutil.copy(release.zip, mirror / ADDRESS)
    rc = tmp_path / "terraformrc"
    rc.write_text(provider_installation_snippet(mirror))
    terraform = terraform_for(tmp_path / "tf", first.home, TF_CLI_CONFIG_FILE=str(rc))
    terraform.write(FUNCTION_OUTPUT)
    terraform.init()
    extracted = terraform.workdir / ".terraform/providers" / ADDRESS / VERSION / PLATFORM
    assert not extracted.is_symlink()
    assert (extracted / executable_name()).read_bytes() == first.launcher.read_bytes()
    assert (extracted / executable_name()).stat().st_mode & 0o777 == 0o755
    terraform.apply()
    assert terraform.outputs() == {"arn": ARN}
    # The h1: from the zip is the h1: of every unpacked install.
    assert lock_hashes(terraform.workdir) == lock_hashes_of(first, tmp_path / "unpacked")


def test_providers_lock_from_a_private_registry_records_the_zh_of_sha256sums(
    installs: tuple[Install, ...], release: Release, tmp_path: Path
) -> None:
    """The release files served by a private registry (provider registry protocol, HTTPS,
    signed SHA256SUMS): `terraform providers lock` records zh: from SHA256SUMS beside the h1:
    of the unpacked installs, and `terraform init` installs from there."""
    if shutil.which("gpg") is None:
        pytest.skip("gpg is needed to sign SHA256SUMS")
    first = installs[0]
    with private_registry(release, tmp_path) as registry:
        terraform = terraform_for(
            tmp_path / "tf",
            first.home,
            TF_CLI_CONFIG_FILE=str(registry.cli_config),
            SSL_CERT_FILE=str(registry.certificate),
        )
        terraform.write(FUNCTION_OUTPUT)
        locked = terraform.run("providers", "lock", "-no-color", f"-platform={PLATFORM}")
        assert f"(self-signed, key ID {registry.key_id})" in locked.stdout
        digest = release.sums.read_text().split()[0]
        h1 = lock_hashes_of(first, tmp_path / "unpacked")
        assert lock_hashes(terraform.workdir) == {f"zh:{digest}"} | h1
        init = terraform.init()
        assert "Installed immuta-pg/immuta v0.1.0" in init.stdout
        terraform.apply()
        assert terraform.outputs() == {"arn": ARN}


@dataclass(frozen=True)
class Registry:
    cli_config: Path  # points registry.terraform.io's providers.v1 service at the registry
    certificate: Path  # its TLS certificate, for SSL_CERT_FILE
    key_id: str  # of the key that signed SHA256SUMS


@contextlib.contextmanager
def private_registry(release: Release, tmp_path: Path) -> Iterator[Registry]:
    """A registry for registry.terraform.io/immuta-pg/immuta on localhost (the CLI
    configuration's `host` block points the hostname's providers.v1 service at it)."""
    gnupg = tmp_path / "gnupg"
    gnupg.mkdir(mode=0o700)
    gpg_env = {**os.environ, "GNUPGHOME": str(gnupg)}
    gpg = ("gpg", "--batch", "--quiet", "--passphrase", "")
    run(
        *gpg,
        "--quick-gen-key",
        "Release Signing <release@example.invalid>",
        "ed25519",
        "sign",
        "never",
        env=gpg_env,
    )
    armor = run(*gpg, "--armor", "--export", env=gpg_env).stdout
    listing = run("gpg", "--batch", "--with-colons", "--list-keys", env=gpg_env).stdout
    key_id = next(line.split(":")[4] for line in listing.splitlines() if line.startswith("pub"))
    files = tmp_path / "files"
    files.mkdir()
    for path in (release.zip, release.sums):
        shutil.copy(path, files)
    run(
        *gpg,
        "--detach-sign",
        "--output",
        files / f"{release.sums.name}.sig",
        release.sums,
        env=gpg_env,
    )

    # A self-signed certificate for localhost (also a server certificate), trusted by
    # Terraform through SSL_CERT_FILE.
    certificate = make_client_certificate()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text(certificate.cert_pem)
    key.write_text(certificate.key_pem)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    base = f"https://localhost:{server.server_address[1]}"
    download = {
        "protocols": ["6.0"],
        "os": "linux",
        "arch": "amd64",
        "filename": release.zip.name,
        "download_url": f"{base}/files/{release.zip.name}",
        "shasums_url": f"{base}/files/{release.sums.name}",
        "shasums_signature_url": f"{base}/files/{release.sums.name}.sig",
        "shasum": hashlib.sha256(release.zip.read_bytes()).hexdigest(),
        "signing_keys": {"gpg_public_keys": [{"key_id": key_id, "ascii_armor": armor}]},
    }
    versions = {
        "versions": [
            {
                "version": VERSION,
                "protocols": ["6.0"],
                "platforms": [{"os": "linux", "arch": "amd64"}],
            }
        ]
    }
    routes = {
        "/v1/providers/immuta-pg/immuta/versions": json.dumps(versions).encode(),
        f"/v1/providers/immuta-pg/immuta/{VERSION}/download/linux/amd64": json.dumps(
            download
        ).encode(),
        **{f"/files/{p.name}": p.read_bytes() for p in files.iterdir()},
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = routes.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    server.RequestHandlerClass = Handler
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rc = tmp_path / "registry.tfrc"
    rc.write_text(
        'host "registry.terraform.io" {\n'
        f'  services = {{ "providers.v1" = "{base}/v1/providers/" }}\n'
        "}\n"
    )
    try:
        yield Registry(rc, cert, key_id)
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- the development mirror


def test_the_development_mirror_holds_the_same_launcher() -> None:
    """./build.sh's dist/mirror: the user's launcher, running this checkout's .venv (recorded
    beside the mirror, so nothing in the developer's HOME changes)."""
    mirror = REPO / "dist/mirror"
    launcher = mirror / ADDRESS / VERSION / PLATFORM / executable_name()
    if not launcher.is_file():
        pytest.skip("run ./build.sh first")
    assert launcher.read_text() == launcher_text()
    pointer = mirror / f".terraform-provider-immuta/{VERSION}/python"
    assert Path(pointer.read_text().strip()).parent == REPO / ".venv/bin"


# ---------------------------------------------------------------- CLI configuration files


def test_cli_configuration_files_as_terraform_chooses_them(tmp_path: Path) -> None:
    home = tmp_path
    (home / ".terraform.d").mkdir()
    rc = home / ".terraformrc"
    rc.write_text(
        '# provider_installation {\n/* provider_installation {} */\nplugin_cache_dir = "/x"\n'
    )
    hcl = home / ".terraform.d/mirror.tfrc"
    hcl.write_text("  provider_installation {\n  direct {}\n}\n")
    as_json = home / ".terraform.d/other.tfrc.json"
    as_json.write_text('{"provider_installation": [{"direct": [{}]}]}')
    (home / ".terraform.d/ignored.txt").write_text("provider_installation {}")
    env = {"HOME": str(home)}
    assert cli_config_files(env) == [rc, hcl, as_json]
    assert [has_provider_installation(p) for p in (rc, hcl, as_json)] == [False, True, True]
    # TF_CLI_CONFIG_FILE replaces them all (and a missing one means none).
    assert cli_config_files({**env, "TF_CLI_CONFIG_FILE": str(hcl)}) == [hcl]
    assert cli_config_files({**env, "TF_CLI_CONFIG_FILE": str(home / "missing")}) == []
